// Package binpages lets a process give back the resident pages of its own
// executable that it touched once and may never touch again.
//
// A Go binary's code and read-only data (the function tables among them)
// are mapped from the file; every page a process touches counts in its
// RSS, and the kernel maps the pages around a touched one too. Starting a
// campus app runs every linked package's initialisation and its start-up
// paths (the spreadsheet library, the embedded database's backends, the
// catalogues, the templates): about 30 MB of the 62 MB binary ends up
// resident in each app, most of it never used while the app serves.
//
// Drop unmaps those pages from the process (madvise MADV_DONTNEED on the
// binary's read-only mappings: private, never written, so nothing is
// lost): they stay in the page cache, shared by every process of the
// binary, and the ones the app uses again come back on their next touch
// (a minor fault, no disk read while the page cache holds them). What the
// app then holds is what it serves with.
package binpages

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Drop unmaps the process's resident pages of its executable's read-only
// mappings (code and read-only data) and reports how many bytes of
// mappings it advised. Writable mappings are never touched. Where the
// operating system has no such advice (not Linux), it does nothing.
func Drop() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("find the executable: %w", err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("read the mappings: %w", err)
	}
	type span struct {
		start, end uintptr
		written    bool // holds pages copied on write (relocations): never advised
	}
	var spans []span
	var cur *span
	for line := range strings.SplitSeq(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // start-end perms offset dev inode path
			cur = nil
			// The path may hold spaces (and " (deleted)" once the binary is
			// replaced on disk: readlink says so too).
			if len(fs) < 6 || strings.Join(fs[5:], " ") != exe || !readOnlyPrivate(fs[1]) {
				continue
			}
			lo, hi, _ := strings.Cut(fs[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || end <= start {
				continue
			}
			spans = append(spans, span{start: uintptr(start), end: uintptr(end)})
			cur = &spans[len(spans)-1]
			continue
		}
		if cur != nil && fs[0] == "Anonymous:" && len(fs) > 1 && fs[1] != "0" {
			cur.written = true
		}
	}
	var n int64
	for _, s := range spans {
		if s.written {
			continue
		}
		if err := dontNeed(s.start, s.end-s.start); err != nil {
			return n, fmt.Errorf("give back the pages at %#x: %w", s.start, err)
		}
		n += int64(s.end - s.start)
	}
	return n, nil
}

// readOnlyPrivate reports whether perms (as /proc/self/maps words them)
// are those of a private mapping that cannot be written: code (r-xp) or
// read-only data (r--p). A read-only mapping whose pages were written
// before it was made read-only (relocations) is skipped by Drop: those
// pages are the process's own copies, not the file's.
func readOnlyPrivate(perms string) bool {
	return len(perms) == 4 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p'
}
