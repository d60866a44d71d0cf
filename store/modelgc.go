package store

import (
	"runtime/debug"
	"sync"
)

// The garbage collector's setting (GOGC) is adjusted to the read models a
// process holds. Process-wide, like the setting: counted across Stores.
//
// While a model is decoded from its saved copy (relaxGC): a process that
// starts holds almost nothing, so the collector would run at every
// doubling of a small heap and mark what was decoded so far again and
// again (in a new process at 100,000 students that doubled the load's
// time); the heap may grow eight times its live size meanwhile (a memory
// limit, GOMEMLIMIT, still applies).
//
// While models are held (noteModel): the collector lets the heap grow by
// GOGC percent of what is live before it collects, and the process keeps
// that much memory. A model is live but has nothing to mark (its columns
// hold no pointers, modelcols.go), so a collection costs the same with it;
// only the headroom grows with it: at 100,000 students 13 MB more RSS per
// app for garbage that a collection would free in a few milliseconds. So
// past gcHeadroom of models, GOGC is lowered to allow about gcHeadroom of
// garbage (at least gcMinPercent), counting what the app holds besides
// its models (gcBaseHeap): the percentage applies to all of it. At
// 100,000 students with every schema 3 field filled: 38 for the sealed
// model (7.1 MB, modeltext.go), 17 unsealed (22 MB); about 5 MB of
// garbage either way, as GOGC 18 on the unsealed model alone allowed.
const (
	gcHeadroom   = 5 << 20
	gcBaseHeap   = 6 << 20 // an app's heap without a model: 4–7 MB measured (templates, driver, buffers)
	gcMinPercent = 10
	gcLoadPct    = 800
)

var (
	gcMu      sync.Mutex
	gcBase    int // the setting the process started with (-1: off)
	gcKnown   bool
	gcNow     int
	gcRelaxed int
	gcModels  = map[string]int64{} // by readModel.author: the map must not keep a model alive
)

// applyGCLocked sets GOGC from the state (gcMu held).
func applyGCLocked() {
	if !gcKnown {
		gcBase = debug.SetGCPercent(100)
		debug.SetGCPercent(gcBase)
		gcNow, gcKnown = gcBase, true
	}
	var held int64
	for _, n := range gcModels {
		held += n
	}
	if pct := gcPercent(gcBase, gcRelaxed, held); pct != gcNow {
		debug.SetGCPercent(pct)
		gcNow = pct
	}
}

// gcPercent is the setting for a process started with base, while
// relaxed loads run and models of held bytes are held.
func gcPercent(base, relaxed int, held int64) int {
	switch {
	case base < 0: // off: left off
		return base
	case relaxed > 0:
		return max(base, gcLoadPct)
	case held > gcHeadroom:
		return min(base, max(gcMinPercent, int(int64(base)*gcHeadroom/(held+gcBaseHeap))))
	}
	return base
}

// relaxGC relaxes the collector while a saved model is decoded; restore
// ends that (the setting goes back when the last such load ends).
func relaxGC() (restore func()) {
	gcMu.Lock()
	gcRelaxed++
	applyGCLocked()
	gcMu.Unlock()
	return func() {
		gcMu.Lock()
		gcRelaxed--
		applyGCLocked()
		gcMu.Unlock()
	}
}

// noteModel records the size of the model rm holds (0: none, or closed).
func noteModel(rm *readModel, bytes int64) {
	gcMu.Lock()
	defer gcMu.Unlock()
	if bytes <= 0 {
		delete(gcModels, rm.author)
	} else {
		gcModels[rm.author] = bytes
	}
	applyGCLocked()
}

// bytes is about what sn holds in memory: its columns.
func (sn *snapshot) bytes() int64 {
	n := 8*len(sn.ids) + 4*len(sn.rec) + len(sn.recs) + len(sn.text) + 4*len(sn.at) + sn.sealed.bytes()
	for o := range numOrders {
		n += 4 * len(sn.posOf[o])
	}
	return int64(n)
}
