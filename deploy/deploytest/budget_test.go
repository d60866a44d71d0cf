package deploytest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/campus-saas/campus/deploy/supervisor"
)

// Memory budget (issue 20): compose and Nomad run each app with the limits
// campus dev's supervisor gives it: a hard memory limit (default
// supervisor.DefaultMemory), GOMEMLIMIT below it (90%, as the supervisor
// sets it), and the same CPU share for every school.

// goMemLimit parses a GOMEMLIMIT value ("460MiB", "483183820").
func goMemLimit(t *testing.T, s string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("GOMEMLIMIT %q is not what the Go runtime accepts", s)
	}
	return n * mult
}

// checkGoMemLimit: GOMEMLIMIT is below the limit, within 10% of it (not
// so low that the runtime collects all the time).
func checkGoMemLimit(t *testing.T, where, gomemlimit string, limit int64) {
	t.Helper()
	if gomemlimit == "" {
		t.Errorf("%s: no GOMEMLIMIT", where)
		return
	}
	if g := goMemLimit(t, gomemlimit); g >= limit || g < limit/100*89 {
		t.Errorf("%s: GOMEMLIMIT %s (%d bytes) is not 90%% of the memory limit %d", where, gomemlimit, g, limit)
	}
}

func TestComposeAppsHaveTheMemoryBudget(t *testing.T) {
	p := loadCompose(t)
	apps := 0
	for name, s := range p.Services {
		if !strings.HasPrefix(name, appPrefix) {
			continue
		}
		apps++
		if int64(s.MemLimit) != supervisor.DefaultMemory {
			t.Errorf("%s: mem_limit %d, want campus dev's default %d", name, s.MemLimit, supervisor.DefaultMemory)
		}
		if s.MemSwapLimit != s.MemLimit {
			t.Errorf("%s: memswap_limit %d, want the mem_limit %d (no swap beyond the limit)", name, s.MemSwapLimit, s.MemLimit)
		}
		if s.CPUShares != 1024 {
			t.Errorf("%s: cpu_shares %d, want 1024 for every school", name, s.CPUShares)
		}
		gml := ""
		if v := s.Environment["GOMEMLIMIT"]; v != nil {
			gml = *v
		}
		checkGoMemLimit(t, name, gml, int64(s.MemLimit))
	}
	if apps == 0 {
		t.Fatal("no app services in the compose file")
	}
}

func TestNomadAppHasTheMemoryBudget(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want int64 // MiB
	}{
		{map[string]string{"tenant": "lagos"}, supervisor.DefaultMemory >> 20},
		{map[string]string{"tenant": "lagos", "memory": "2048"}, 2048}, // a big school's own limit
	} {
		j := parseNomadJob(t, nomadAppJob, c.vars, nil)
		_, task := onlyTask(t, j)
		if got := task.resources["memory"]; got != strconv.FormatInt(c.want, 10) {
			t.Errorf("vars %v: resources memory %q MiB, want %d", c.vars, got, c.want)
		}
		if task.resources["cpu"] == "" {
			t.Errorf("vars %v: no cpu share", c.vars)
		}
		checkGoMemLimit(t, "nomad app job", task.env["GOMEMLIMIT"], c.want<<20)
	}
}
