// Command campus is the one binary of Campus: the tenant-routing proxy, the
// school app of one tenant, the local development system and the operator
// commands. Run `campus help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/campus-saas/campus/internal/cliflags"
)

// env is everything a command may touch outside its arguments, so that
// tests can run commands in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one `campus` subcommand.
type command struct {
	synopsis string
	run      func(ctx context.Context, e *env, args []string) error
}

// commands is the name→command table, in the style of consul's
// command/registry.go.
func commands() map[string]command {
	return map[string]command{
		"dev":         {"Run the whole system on one machine (embedded database, registry, supervisor, proxy)", runDev},
		"proxy":       {"Run the tenant-routing reverse proxy", runProxy},
		"app":         {"Run the school app for one tenant", runApp},
		"app-pool":    {"Wait, holding no tenant, to be bound to one and run its app (the supervisor's pool; reads one line on stdin)", runAppPool},
		"tenant":      {"Create, list, show, suspend, resume and delete tenants", runTenant},
		"token":       {"Print or rotate Consul ACL tokens: one per tenant's apps, read-only for proxies", runToken},
		"manage":      {"Per-tenant management: migrate, createsuperuser, changepassword, students import/export", runManage},
		"migrate":     {"Migrate every tenant's database (--all), resumable, --parallel at a time", runMigrate},
		"healthcheck": {"Exit 0 when a URL answers 2xx (for container health checks)", runHealthcheck},
		"version":     {"Print the version and the commit it was built from", runVersion},
		"operator":    {"Create, list and revoke operator tokens of the control API and console", runOperator},
		"audit":       {"List the audit trail of the control API and console", runAudit},
		"control":     {"Serve the control API and the operators' console", runControl},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// errUsage marks an error whose message is a usage problem (exit code 2).
var errUsage = cliflags.ErrUsage

// run dispatches to a subcommand and turns its error into an exit code.
func run(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if _, ok := cmds[args[1]]; ok {
				return run(ctx, e, []string{args[1], "--help"})
			}
		}
		usage(e.stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "campus: unknown command %q%s\n\n", args[0], didYouMean(args[0], slices.Collect(maps.Keys(cmds))))
		usage(e.stderr, cmds)
		return 2
	}
	err := describe(c.run(ctx, e, args[1:]))
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(e.stderr, "%s: %s\n", commandLabel(args), strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", commandLabel(args), err)
		return 1
	}
}

// commandLabel names the command an error came from: "campus tenant
// create", "campus manage", "campus dev".
func commandLabel(args []string) string {
	label := "campus " + args[0]
	// tenant and token name their subcommand next (unknown ones say so).
	if (args[0] == "tenant" || args[0] == "token") && len(args) > 1 && args[1] != "" &&
		strings.Trim(args[1], "abcdefghijklmnopqrstuvwxyz") == "" {
		label += " " + args[1]
		if args[1] == "host" && len(args) > 2 && (args[2] == "add" || args[2] == "remove") {
			label += " " + args[2]
		}
	}
	return label
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "Usage: campus <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Campus serves one school app to many tenants, one process per tenant.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].synopsis)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `campus <command> --help` for a command's flags. Flags that configure connections")
	fmt.Fprintln(w, "and servers can also be set with an environment variable CAMPUS_<FLAG> (e.g. --data →")
	fmt.Fprintln(w, "CAMPUS_DATA), shown beside them in --help; confirmations, switches such as --purge-data,")
	fmt.Fprintln(w, "tenant names and hosts come from the command line alone.")
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags("version", "", "Print the version.")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	exe, _ := os.Executable()
	fmt.Fprintln(e.stdout, versionLine(version, readBuildInfo(), exe))
	return nil
}

// builtByGoRun reports whether exe is a binary of `go run`, which Go
// stamps with no commit: a temporary one (GOTMPDIR/go-build…/b001/exe/NAME)
// or one kept in the build cache (GOCACHE/07/07fd…-d/NAME).
func builtByGoRun(exe string) bool {
	sep := string(os.PathSeparator)
	if strings.Contains(exe, sep+"go-build") && strings.Contains(exe, sep+"exe"+sep) {
		return true
	}
	dir := filepath.Dir(exe)
	hash, shard := filepath.Base(dir), filepath.Base(filepath.Dir(dir))
	return len(shard) == 2 && strings.HasSuffix(hash, "-d") && strings.HasPrefix(hash, shard) &&
		strings.Trim(strings.TrimSuffix(hash, "-d"), "0123456789abcdef") == ""
}

// readBuildInfo is debug.ReadBuildInfo, replaceable in tests.
var readBuildInfo = func() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// versionLine is "campus VERSION (commit C, TIME[, modified]) GO": the
// version set with -ldflags, else the module version; the commit from the
// VCS stamp Go puts in the build info (vcs.revision) of a binary built by
// `go build` or `go install` in a git checkout. Where there is none it says
// why, from exe (the running binary): `go run` records none, and neither
// does -buildvcs=false (in GOFLAGS, say) or a build outside a checkout.
func versionLine(ldVersion string, bi *debug.BuildInfo, exe string) string {
	v := ldVersion
	if bi == nil {
		return "campus " + v + " (no build information)"
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var commit, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if commit == "" && builtByGoRun(exe) {
		return fmt.Sprintf("campus %s (commit not recorded: built by `go run`, which records none; a campus built by "+
			"`go install ./cmd/campus` in a git checkout knows it, unless GOFLAGS has -buildvcs=false) %s", v, bi.GoVersion)
	}
	if commit == "" {
		return fmt.Sprintf("campus %s (commit not recorded: built outside a git checkout or with -buildvcs=false, as GOFLAGS "+
			"may set; `go install -buildvcs=true ./cmd/campus` records it) %s", v, bi.GoVersion)
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if when != "" {
		when = ", " + when
	}
	return fmt.Sprintf("campus %s (commit %s%s%s) %s", v, commit, when, modified, bi.GoVersion)
}

// didYouMean suggests the known name closest to an unknown one.
var didYouMean = cliflags.DidYouMean

// isHelpArg reports whether a positional argument asks for help.
func isHelpArg(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }

// usageErr formats a usage error.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// joinArgs is used in messages that show a command line.
func joinArgs(args []string) string { return strings.Join(args, " ") }
