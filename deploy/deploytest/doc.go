// Package deploytest checks Campus's deployment files, which no Docker
// engine, Consul or Nomad runs here: the Dockerfile, docker-compose.yml and
// deploy/compose, deploy/prometheus, deploy/grafana and deploy/nomad.
//
// Each is read with the parser its own project publishes (compose-go,
// Prometheus's config package and PromQL parser, HCL), then tied to the code:
//   - every campus command line and environment in compose and Nomad goes
//     through the campus binary's own flag parsing (exit code 2 means
//     refused);
//   - the compose topology runs for real, with addresses rewritten to this
//     machine: the init script against a stand-in Consul agent
//     (registry/consul/consultest) and the embedded MongoDB-compatible server
//     of `campus dev`, each app service and the proxy, whose health checks
//     must pass and which must route each tenant's host to that tenant;
//   - every metric and label a Grafana dashboard queries must be exposed by
//     the running proxies and apps;
//   - Prometheus's relabelling of the Consul registrations yields the
//     addresses those processes serve /metrics on.
//
// The package has no non-test code. `go test -short` skips the tests that
// start processes.
package deploytest
