package registrytest

import (
	"errors"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// Memory budget (issue 20): the memory-limit override of a tenant and the
// memory kills of an instance.

func testMemory(t *testing.T, e *env) {
	name, other := e.name("mem"), e.name("memother")
	tn := e.tenant(name)
	tn.Memory = "768MiB"
	created := e.create(e.r, tn)
	if created.Memory != "768MiB" {
		t.Fatalf("CreateTenant kept memory %q, want 768MiB", created.Memory)
	}
	bystander := e.create(e.r, e.tenant(other))
	for _, c := range []struct{ in, want string }{
		{"512m", "512MiB"}, {"2G", "2GiB"}, {"1536Mi", "1536MiB"}, {"2048MiB", "2GiB"}, {"default", ""}, {"1GiB", "1GiB"},
	} {
		got, err := e.r.SetMemory(e.ctx(), name, c.in)
		if err != nil || got.Memory != c.want {
			t.Fatalf("SetMemory(%q) = %q, %v; want %q", c.in, got.Memory, err, c.want)
		}
		want := created
		want.Memory = c.want
		if !got.Equal(want) {
			t.Fatalf("SetMemory changed more than the memory limit:\n %+v\nwant\n %+v", got, want)
		}
		read, err := e.r2.Tenant(e.ctx(), name)
		if err != nil || read.Memory != c.want {
			t.Fatalf("second handle reads memory %q, %v; want %q", read.Memory, err, c.want)
		}
	}
	e.waitFor(e.r2, "the memory limit in a snapshot", func(s registry.Snapshot) bool {
		for _, tn := range s.Tenants {
			if tn.Name == name {
				return tn.Memory == "1GiB"
			}
		}
		return false
	})
	for _, bad := range []string{"lots", "-5M", "10M", "1.5G", "512", "5000GiB", "1T"} {
		if _, err := e.r.SetMemory(e.ctx(), name, bad); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("SetMemory(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if read, _ := e.r.Tenant(e.ctx(), name); read.Memory != "1GiB" {
		t.Errorf("a refused SetMemory changed it to %q", read.Memory)
	}
	// One tenant's limit is its own: the other tenant's record is as it was.
	if read, err := e.r2.Tenant(e.ctx(), other); err != nil || !read.Equal(bystander) {
		t.Errorf("SetMemory of %s changed %s: %+v, %v; want %+v", name, other, read, err, bystander)
	}
	if _, err := e.r.SetMemory(e.ctx(), e.name("missing"), "512MiB"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SetMemory(missing) = %v, want ErrNotFound", err)
	}
	bad := e.tenant(e.name("membad"))
	bad.Memory = "512m" // not normalised
	if _, err := e.r.CreateTenant(e.ctx(), bad); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("CreateTenant with memory %q = %v, want ErrInvalid", bad.Memory, err)
	}

	// An instance carries the memory kills its supervisor has seen.
	id := e.instanceID("mem-1")
	in, _ := e.register(e.r, id, name, true)
	e.waitFor(e.r2, "an instance with no memory kills", func(s registry.Snapshot) bool {
		got, ok := findInstance(s, id)
		return ok && got.MemoryKills == 0
	})
	in.MemoryKills = 2
	if err := e.r.RegisterInstance(e.ctx(), in); err != nil {
		t.Fatalf("RegisterInstance(%+v): %v", in, err)
	}
	e.waitFor(e.r2, "the instance's memory kills", func(s registry.Snapshot) bool {
		got, ok := findInstance(s, id)
		return ok && got.MemoryKills == 2 && got.Healthy && got.Tenant == name
	})
}
