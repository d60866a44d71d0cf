package nomadwake

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

type fakeScaler struct {
	mu     sync.Mutex
	counts map[string]int
	scaled []string
}

func (f *fakeScaler) Count(_ context.Context, job, group string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[job+"/"+group], nil
}

func (f *fakeScaler) Scale(_ context.Context, job, group string, count int, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[job+"/"+group] = count
	f.scaled = append(f.scaled, job)
	return nil
}

// TestWakeScalesOnlyTheActiveTenantsJob: a wake scales exactly the woken
// tenant's group, once; suspended, deleted and unknown tenants are never
// scaled.
func TestWakeScalesOnlyTheActiveTenantsJob(t *testing.T) {
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	for _, n := range []string{"accra", "lagos", "kumasi", "gone"} {
		tn, err := registry.NewTenant(n, []string{n + ".school.localhost"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.SetState(ctx, "kumasi", registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MarkDeleted(ctx, "gone", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sc := &fakeScaler{counts: map[string]int{}}
	w := Waker{Registry: reg, Scaler: sc}
	for _, n := range []string{"kumasi", "gone", "nobody", "accra", "accra"} {
		w.Wake(ctx, n)
	}
	if len(sc.scaled) != 1 || sc.scaled[0] != "campus-app-accra" {
		t.Fatalf("scaled %v, want campus-app-accra once", sc.scaled)
	}
	if c := sc.counts["campus-app-accra/app"]; c != 1 {
		t.Errorf("accra's group count = %d, want 1", c)
	}
}
