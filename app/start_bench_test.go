package app

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// BenchmarkNewServer is the app's own start-up work once a process knows
// its tenant (a pooled process has already built one app for a
// placeholder, appserver.WarmUp): metrics, static files, templates,
// routes. The database work of a start is not in it.
func BenchmarkNewServer(b *testing.B) {
	t := registry.Tenant{ID: registry.NewID(), Name: "bench", DisplayName: "Bench",
		Hosts: []string{"bench.test"}, PrimaryHost: "bench.test", Database: "bench", State: registry.StateActive}
	warm := prometheus.NewRegistry()
	if _, err := NewServer(Config{Tenant: t, Store: &store.Store{}, Logger: slog.New(slog.DiscardHandler), Registerer: warm, Gatherer: warm}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		reg := prometheus.NewRegistry()
		if _, err := NewServer(Config{Tenant: t, Store: &store.Store{}, Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg}); err != nil {
			b.Fatal(err)
		}
	}
}
