package app

import (
	"runtime/debug"
	"sync"
)

// Import previews are bounded (issue 20): planning an import holds the
// whole file, its parsed rows and the plan in memory (a 100,000-row file:
// tens of MB), so at most one import (preview, or confirmation until the
// import has ended: importjob.go) per user and importMaxPerApp per app are
// planned or running at once; beyond, the person is
// asked to try again in a moment (429 for their own second import, 503
// with Retry-After when the school is busy with others), losing nothing
// but the upload. Plans are never kept between requests (see import.go),
// and after a large one the memory goes back to the system at once rather
// than when the runtime's scavenger gets to it.

const (
	importMaxPerApp = 2
	// importReleaseRows: after a plan of at least this many rows, when no
	// other import runs, the freed memory is returned to the system.
	importReleaseRows = 10_000
)

// importGate counts the imports being planned.
type importGate struct {
	mu      sync.Mutex
	users   map[string]bool
	running int
	max     int
	release func() // returns freed memory to the system
}

func newImportGate(max int) *importGate {
	return &importGate{users: map[string]bool{}, max: max, release: debug.FreeOSMemory}
}

// gateRefusal says why enter refused.
type gateRefusal int

const (
	gateOK       gateRefusal = iota
	gateUserBusy             // this user has an import being planned
	gateAppBusy              // importMaxPerApp imports are being planned
)

// enter admits one import of user; the caller must call leave with the
// number of rows it planned once its memory is no longer needed.
func (g *importGate) enter(user string) gateRefusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.users[user]:
		return gateUserBusy
	case g.running >= g.max:
		return gateAppBusy
	}
	g.users[user] = true
	g.running++
	return gateOK
}

// leave ends user's import; after a large one, when it was the last, the
// memory goes back to the system (in the background: the answer is not
// delayed by it), and leave reports true.
func (g *importGate) leave(user string, rows int) bool {
	g.mu.Lock()
	delete(g.users, user)
	g.running--
	last := g.running == 0
	g.mu.Unlock()
	if last && rows >= importReleaseRows {
		go g.release()
		return true
	}
	return false
}
