package supervisor

import (
	"os"
	"strings"
)

// childEnvAllowed lists the parent's environment variables a child app
// inherits: what a Go program and its locale need, nothing else. A cloud
// credential, a Consul token or a database URI in the operator's shell
// stays in the operator's shell.
var childEnvAllowed = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "TMPDIR": true, "TZ": true,
	"LANG": true, "LC_ALL": true, "LC_CTYPE": true, "LC_MESSAGES": true,
	"GOMAXPROCS": true, "GOMEMLIMIT": true, "GOGC": true, "GODEBUG": true, "GOTRACEBACK": true,
}

// ChildEnv is the environment of a child: the allowlisted variables of
// parent (os.Environ() when nil), then extra ("NAME=value", given by the
// caller on purpose, e.g. the child's own MONGODB_URI).
func ChildEnv(parent []string, extra ...string) []string {
	if parent == nil {
		parent = os.Environ()
	}
	out := make([]string, 0, len(childEnvAllowed)+len(extra))
	for _, kv := range parent {
		name, _, _ := strings.Cut(kv, "=")
		if childEnvAllowed[name] {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// ChildEnvAllowed reports whether a child may inherit the variable name.
func ChildEnvAllowed(name string) bool { return childEnvAllowed[name] }
