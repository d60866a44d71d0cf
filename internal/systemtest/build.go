package systemtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Binary is a command built for one test binary.
type Binary struct {
	Path string // the executable
	dir  string
}

// RepoRoot is the repository's root folder (found from this file's place,
// whatever the test's working directory).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("systemtest: cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

// BuildCampus builds ./cmd/campus into a fresh temporary folder, with env
// added to the environment of `go build` (CGO_ENABLED=0, say). Call it
// once from TestMain and Remove the binary after m.Run. The error carries
// the compiler's output.
func BuildCampus(env ...string) (*Binary, error) { return Build("./cmd/campus", env...) }

// Build builds the command of the repository's package pkg (./cmd/NAME)
// as BuildCampus does; the binary is named NAME.
func Build(pkg string, env ...string) (*Binary, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	name := filepath.Base(pkg)
	dir, err := os.MkdirTemp("", name+"-test-bin-")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", name, err)
	}
	b := &Binary{Path: filepath.Join(dir, name), dir: dir}
	build := exec.Command("go", "build", "-o", b.Path, pkg)
	build.Dir = root
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return b, nil
}

// Remove deletes the binary and its folder.
func (b *Binary) Remove() {
	if b != nil {
		os.RemoveAll(b.dir)
	}
}
