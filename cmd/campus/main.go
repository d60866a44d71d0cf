// Command campus is the one binary of Campus: the tenant-routing proxy, the
// school app of one tenant, the local development system and the operator
// commands. Run `campus help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
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
		"bench":       {"Measure the proxy against direct app access and print a table", runBench},
		"healthcheck": {"Exit 0 when a URL answers 2xx (for container health checks)", runHealthcheck},
		"version":     {"Print the version", runVersion},
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
var errUsage = errors.New("usage")

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
		fmt.Fprintf(e.stderr, "campus: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return 2
	}
	err := c.run(ctx, e, args[1:])
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
	fmt.Fprintln(w, "Run `campus <command> --help` for a command's flags. Every flag can also be set")
	fmt.Fprintln(w, "with an environment variable CAMPUS_<FLAG> (e.g. --data → CAMPUS_DATA).")
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags("version", "", "Print the version.")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "campus", version)
	return nil
}

// usageErr formats a usage error.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// joinArgs is used in messages that show a command line.
func joinArgs(args []string) string { return strings.Join(args, " ") }
