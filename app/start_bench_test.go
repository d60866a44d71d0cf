package app

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/app/i18n"
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

// TestEveryPageParses parses every page in every language: pages are
// parsed on their first use (views.forLocale), so a broken one would
// otherwise be found by its first visitor.
func TestEveryPageParses(t *testing.T) {
	if err := WarmUp(); err != nil {
		t.Fatal(err)
	}
	a, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.views.files) < len(requiredViews) {
		t.Fatalf("%d page files, want at least %d", len(a.views.files), len(requiredViews))
	}
	for _, lang := range i18n.Languages {
		l := &locale{lang: i18n.Get(lang.Code), zone: time.UTC, zoneName: i18n.DefaultZone}
		for name := range a.views.files {
			p, err := a.views.forLocale(l, name)
			if err != nil || p == nil {
				t.Errorf("page %s in %s: %v, %v", name, lang.Code, p, err)
			}
		}
		if p, err := a.views.forLocale(l, "no_such_page"); p != nil || err != nil {
			t.Errorf("no_such_page in %s: %v, %v; want nil, nil", lang.Code, p, err)
		}
	}
}

// BenchmarkViewsFirstPage is the template work of a fresh process up to
// its first public page: the layout parsed, then the page and its
// locale's clone.
func BenchmarkViewsFirstPage(b *testing.B) {
	st, err := loadStatic()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		v, err := parseViews(st.url)
		if err != nil {
			b.Fatal(err)
		}
		if p, err := v.forLocale(defaultLocale(), "public_index"); p == nil || err != nil {
			b.Fatal(p, err)
		}
	}
}
