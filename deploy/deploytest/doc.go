// Package deploytest checks Campus's deployment files: the Dockerfile,
// docker-compose.yml and deploy/compose, deploy/prometheus, deploy/grafana
// and deploy/nomad. No Docker engine or Nomad runs here; Consul and
// Prometheus do, built by internal/engines.
//
// Each is read with the parser its own project publishes (compose-go,
// Prometheus's config package and PromQL parser, HCL), then tied to the code:
//   - every campus command line and environment in compose and Nomad goes
//     through the campus binary's own flag parsing (exit code 2 means
//     refused);
//   - the compose topology runs for real, with addresses rewritten to this
//     machine, on a real Consul agent: the init script, `campus dev` (its
//     embedded MongoDB-compatible server, and its supervisor running a
//     second app per tenant), each app service and the proxy, whose health
//     checks must pass, which must register themselves and route each
//     tenant's host to that tenant;
//   - a real Prometheus runs deploy/prometheus/prometheus.yml (addresses and
//     intervals substituted, nothing else) and must find every proxy and app
//     through Consul and answer every query of every dashboard panel with
//     at least one series, before any 5xx or restart;
//   - every metric and label a Grafana dashboard queries must be exposed by
//     the running proxies and apps.
//
// The package has no non-test code. `go test -short` skips the tests that
// start processes.
package deploytest
