package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// TestInstancesRegisterOnAFullDisk: with campus dev's data folder full
// (its embedded database fills the same disk), apps that restart are
// still registered and deregistered: the registry's WAL is checkpointed
// small and rewritten from its start, so a commit needs no new space
// (issue 23). Not forever: see the comment at the second churn. Root
// only (a small tmpfs).
func TestInstancesRegisterOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (mount -t tmpfs)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	r := open(t, dir)
	ctx := context.Background()
	tn, err := registry.NewTenant("nairobi", []string{"nairobi.school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	churn := func(round, n int) error {
		for i := range n {
			in := registry.Instance{ID: fmt.Sprintf("dev-%d-%d", round, i), Tenant: "nairobi", Addr: fmt.Sprintf("127.0.0.1:%d", 20000+i)}
			if err := r.RegisterInstance(ctx, in); err != nil {
				return fmt.Errorf("register %s: %w", in.ID, err)
			}
			if err := r.DeregisterInstance(ctx, in.ID); err != nil {
				return fmt.Errorf("deregister %s: %w", in.ID, err)
			}
		}
		return nil
	}
	if err := churn(0, 100); err != nil { // the WAL reaches its working size while there is room
		t.Fatal(err)
	}

	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for zeros := make([]byte, 64<<10); ; {
		if _, err := f.Write(zeros); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Restarts on a full disk: the WAL is rewritten in place; what grows
	// is the database itself (deregistrations leave tombstones), within
	// the free room its pages have (63 cycles here; without the small
	// WAL, none: the 4 MB fill up while there is still room).
	if err := churn(1, 40); err != nil {
		t.Fatalf("on a full disk: %v", err)
	}
	if err := r.RegisterInstance(ctx, registry.Instance{ID: "dev-up", Tenant: "nairobi", Addr: "127.0.0.1:20999"}); err != nil {
		t.Fatal(err)
	}
	snap, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Instances) != 1 || snap.Instances[0].ID != "dev-up" {
		t.Errorf("instances on a full disk: %+v", snap.Instances)
	}
}
