package binpages

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// written is data of the binary's writable mapping that Drop must keep.
var written = []int{1, 2, 3}

// exeRSS sums the resident kB of the test binary's own mappings, by
// permissions.
func exeRSS(t *testing.T) map[string]int64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	perms := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) == 0:
		case !strings.HasSuffix(fs[0], ":"):
			perms = ""
			if len(fs) >= 6 && fs[5] == exe {
				perms = fs[1]
			}
		case perms != "" && fs[0] == "Rss:":
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			out[perms] += kb
		}
	}
	return out
}

func TestDropGivesBackTheBinarysReadOnlyPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("madvise on /proc/self/smaps' mappings: Linux only")
	}
	written[1] = 20
	before := exeRSS(t)
	n, err := Drop()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	t.Logf("advised %d bytes; resident kB before %v, after %v", n, before, after)
	if n <= 0 {
		t.Fatalf("advised %d bytes of the binary's read-only mappings", n)
	}
	for _, p := range []string{"r-xp", "r--p"} {
		if after[p] >= before[p] {
			t.Errorf("%s: resident %d kB after Drop, %d before: nothing given back", p, after[p], before[p])
		}
	}
	// The process runs on and its written data is intact.
	if written[0]+written[1]+written[2] != 24 {
		t.Errorf("written data changed by Drop: %v", written)
	}
	if _, err := Drop(); err != nil {
		t.Fatalf("a second Drop: %v", err)
	}
}
