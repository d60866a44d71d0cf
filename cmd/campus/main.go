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
		fmt.Fprintf(e.stderr, "campus %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "campus %s: %v\n", args[0], err)
		return 1
	}
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
	fmt.Fprintln(e.stdout, versionLine(version, readBuildInfo()))
	return nil
}

// readBuildInfo is debug.ReadBuildInfo, replaceable in tests.
var readBuildInfo = func() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// versionLine is "campus VERSION (commit C, TIME[, modified]) GO": the
// version set with -ldflags, else the module version; the commit from the
// VCS stamp Go puts in the build info.
func versionLine(ldVersion string, bi *debug.BuildInfo) string {
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
	if commit == "" {
		return fmt.Sprintf("campus %s (commit unknown: built without version control information) %s", v, bi.GoVersion)
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
