//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// cgroup v2 cannot be run on the v1 machines this was written on: this
// test only checks which files the v2 path writes and reads, in a plain
// folder standing in for the supervisor's delegated cgroup (no kernel:
// nothing here shows that a v2 kernel enforces them). Each school gets its
// own group with its own memory.max, no swap and the equal cpu.weight; the
// folder weighs one weight per school; a kill counted in one school's
// memory.events is not another's (cross-tenant).
func TestCgroupV2Files(t *testing.T) {
	dir := t.TempDir()
	g := &cgroups{v2: true, mem: dir, cpu: dir}
	accra, err := g.create("accra-1", 256*mib)
	if err != nil {
		t.Fatal(err)
	}
	lagos, err := g.create("lagos-2", 128*mib)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{"accra-1/memory.max", strconv.Itoa(256 * mib)},
		{"accra-1/memory.swap.max", "0"},
		{"accra-1/cpu.weight", "100"},
		{"lagos-2/memory.max", strconv.Itoa(128 * mib)},
		{"lagos-2/cpu.weight", "100"},
		{"cpu.weight", "200"}, // the folder: two schools
	} {
		if got := readTrim(t, filepath.Join(dir, c.file)); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	if d := accra.dirs(); len(d) != 1 || d[0] != filepath.Join(dir, "accra-1") {
		t.Errorf("accra's groups = %v, want one (memory and cpu together)", d)
	}
	events := "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"
	if err := os.WriteFile(filepath.Join(dir, "accra-1", "memory.events"), []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := accra.oomKills(); n != 1 {
		t.Errorf("accra's kills = %d, want 1", n)
	}
	if n := lagos.oomKills(); n != 0 {
		t.Errorf("lagos's kills = %d, want 0 (the kill was accra's)", n)
	}
	g.count(-1)
	if got := readTrim(t, filepath.Join(dir, "cpu.weight")); got != "100" {
		t.Errorf("folder cpu.weight after one school left = %q, want 100", got)
	}
}
