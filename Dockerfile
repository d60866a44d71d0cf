# syntax=docker/dockerfile:1
#
# The one Campus image: a static `campus` binary on a distroless, non-root
# base. Every role (proxy, app, operator commands) is a subcommand:
#
#   docker build -t campus .
#   docker run --rm campus help
#
# Targets:
#   runtime (default)  gcr.io/distroless/static, user nonroot, no shell.
#   tools              the same binary on distroless's :debug-nonroot variant,
#                      which adds a busybox shell; only the one-shot init
#                      service of docker-compose.yml uses it, to run
#                      deploy/compose/campus-init.sh.
#
# Checked by deploy/deploytest (no Docker engine runs in CI): the Go version
# matches go.mod, the build is static (CGO_ENABLED=0) and the runtime user is
# not root.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/campus ./cmd/campus
# The mount point of the backup volume, owned by the runtime user so that
# a new named volume is writable by it (docker-compose.yml, service backup).
RUN mkdir -p /out/backups

FROM gcr.io/distroless/static-debian12:debug-nonroot AS tools
COPY --from=build /out/campus /usr/local/bin/campus
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/campus"]

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/campus /usr/local/bin/campus
COPY --from=build --chown=65532:65532 /out/backups /backups
USER nonroot:nonroot
# 8000 proxy, 8001 proxy admin (/metrics, /healthz, /routes: keep private),
# 8080 app.
EXPOSE 8000 8001 8080
# The default checks an app; docker-compose.yml and the Nomad jobs set the
# right URL for each role.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/campus", "healthcheck", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/campus"]
CMD ["help"]
