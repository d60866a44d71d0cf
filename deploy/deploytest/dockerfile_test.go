package deploytest

import (
	"bufio"
	"debug/elf"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(repoPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

var goDirective = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)

// TestDockerfile checks what no Docker engine can check here: a
// multi-stage build of a static binary with the module's Go version, a
// distroless non-root runtime that is the default target, a health check
// through `campus healthcheck`, and the targets docker-compose.yml builds.
func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	stages := map[string]int{} // name → index of its FROM
	var froms []instruction
	args := map[string]string{}
	for i, in := range ins {
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case "FROM":
			froms = append(froms, in)
			if f := strings.Fields(in.args); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = i
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(froms))
	}
	mod, err := os.ReadFile(repoPath("go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := goDirective.FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:${GO_VERSION}"; !strings.HasPrefix(froms[0].args, want) || args["GO_VERSION"] != string(m[1]) {
		t.Errorf("build stage %q with GO_VERSION=%q, want %s with go.mod's %s", froms[0].args, args["GO_VERSION"], want, m[1])
	}
	var build string
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/campus") {
		t.Errorf("build %q: want CGO_ENABLED=0 go build ./cmd/campus", build)
	}

	// The last stage is what `docker build .` produces.
	last := froms[len(froms)-1]
	if !strings.HasPrefix(last.args, "gcr.io/distroless/static") || !strings.Contains(last.args, ":nonroot") ||
		!strings.HasSuffix(last.args, " AS runtime") {
		t.Errorf("final stage %q: want gcr.io/distroless/static…:nonroot AS runtime", last.args)
	}
	var user, health, entry string
	for _, in := range ins[stages["runtime"]:] {
		switch in.cmd {
		case "USER":
			user = in.args
		case "HEALTHCHECK":
			health = in.args
		case "ENTRYPOINT":
			entry = in.args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("runtime USER %q, want a non-root user", user)
	}
	if !strings.Contains(health, `"/usr/local/bin/campus", "healthcheck", "http://127.0.0.1:8080/readyz"`) {
		t.Errorf("HEALTHCHECK %q: want campus healthcheck of the app's /readyz", health)
	}
	if entry != `["/usr/local/bin/campus"]` {
		t.Errorf("ENTRYPOINT %q, want the campus binary", entry)
	}

	// The targets compose builds exist.
	p := loadCompose(t)
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		if _, ok := stages[s.Build.Target]; !ok {
			t.Errorf("service %s builds target %q, which the Dockerfile lacks", s.Name, s.Build.Target)
		}
	}

	ignore, err := os.ReadFile(repoPath(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(ignore))
	for _, want := range []string{secretsDir, ".env", ".git", ".campus"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s from the build context", want)
		}
	}
}

// TestCampusBinaryStatic: built as the Dockerfile builds it, campus needs
// no dynamic loader, so it runs on distroless/static.
func TestCampusBinaryStatic(t *testing.T) {
	f, err := elf.Open(needCampus(t))
	if err != nil {
		t.Skipf("not an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("campus is dynamically linked (has an ELF interpreter)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("campus links shared libraries %v", libs)
	}
}
