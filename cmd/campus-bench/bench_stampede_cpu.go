package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"
)

// Where a start's CPU goes (issue 20, the mass start): the stampede
// reports the CPU time of this process (the supervisor, the proxy, the
// registry and the embedded database, which answers every app's start-up
// queries) and of the app processes, per start.

type stampedeCPU struct {
	this, apps time.Duration
	tables     float64 // routing tables the proxy built
}

func (c stampedeCPU) print(w io.Writer, starts uint64) {
	if starts == 0 {
		return
	}
	per := func(d time.Duration) string { return msf(d / time.Duration(starts)) }
	fmt.Fprintf(w, "CPU per start: %s in total: %s in the apps (start-up and the one request), %s in this process (supervisor, proxy, registry, database)\n",
		per(c.this+c.apps), per(c.apps), per(c.this))
	fmt.Fprintf(w, "routing tables built by the proxy: %.0f (%.2f per start)\n", c.tables, c.tables/float64(starts))
}

// childPIDs are the running app processes.
func (s *scaleSystem) childPIDs() []int {
	var pids []int
	for _, st := range s.sup.Status() {
		if st.PID > 0 {
			pids = append(pids, st.PID)
		}
	}
	return pids
}

// histogramCount is the number of observations of a histogram.
func histogramCount(s *scaleSystem, name string) uint64 {
	_, n := histogram(s, name)
	return n
}

// startCPUProfile profiles this process into file until the returned
// function is called (file "": nothing).
func startCPUProfile(file string) (stop func() error, err error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
