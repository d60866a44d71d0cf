package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/campus-saas/campus/internal/systemtest"
)

// campusBin and benchBin are built once for the tests that run them.
var campusBin, benchBin string

func TestMain(m *testing.M) {
	campus, err := systemtest.BuildCampus()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build campus:", err)
		os.Exit(1)
	}
	bench, err := systemtest.Build("./cmd/campus-bench")
	if err != nil {
		campus.Remove()
		fmt.Fprintln(os.Stderr, "build campus-bench:", err)
		os.Exit(1)
	}
	campusBin, benchBin = campus.Path, bench.Path
	code := m.Run()
	campus.Remove()
	bench.Remove()
	os.Exit(code)
}
