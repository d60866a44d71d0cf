package supervisor

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

// A supervisor killed with SIGKILL cannot stop its children; the kernel
// must (Pdeathsig).
func TestChildDiesWithKilledSupervisor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg, err := embedded.Open(dir)
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	t.Cleanup(func() { reg.Close() })
	tn, err := registry.NewTenant("nairobi", []string{"nairobi.school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateTenant(context.Background(), tn); err != nil {
		t.Fatal(err)
	}

	sup := systemtest.StartForTest(t, "supervisor process", []string{os.Args[0]}, systemtest.Options{
		Env:        append(os.Environ(), envSupervisor+"="+dir),
		StopSignal: syscall.SIGKILL,
	})

	var pid int
	waitFor(t, 20*time.Second, "the supervisor process's child registered", func() bool {
		snap, err := reg.Snapshot(context.Background())
		if err != nil || len(snap.Instances) != 1 || !snap.Instances[0].Healthy {
			return false
		}
		pid, err = getPID(snap.Instances[0].Addr, "nairobi")
		return err == nil
	})
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	if err := sup.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill supervisor process: %v", err)
	}
	<-sup.Done()
	waitFor(t, 60*time.Second, "the orphaned child to die", func() bool { return !alive(pid) })
}
