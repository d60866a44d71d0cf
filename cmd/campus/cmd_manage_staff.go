package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/store"
)

// manage commands of staff and history: resetlink, history.

func staffManageCommands(cmds map[string]manageCommand) {
	var (
		expires time.Duration
		format  string
	)
	cmds["resetlink"] = manageCommand{
		args: "USERNAME",
		desc: "Print a one-time link with which the user sets a new password in the browser (for a forgotten password). " +
			"The link works once and expires; only a hash of it is kept. A new password by any means voids it.",
		flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&expires, "expires", store.DefaultResetTTL, "how long the link works (at most 168h)")
		},
		run: func(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
			return manageResetLink(ctx, m, fs, expires)
		},
	}
	cmds["history"] = manageCommand{
		desc: "Write the history of students (who added, changed, deleted or imported what, and when), oldest first, to standard output.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&format, "format", "csv", "csv or json")
		},
		run: func(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
			return manageHistory(ctx, m, fs, format)
		},
	}
}

func manageResetLink(ctx context.Context, m *manageCtx, fs *flag.FlagSet, expires time.Duration) error {
	if fs.NArg() != 1 {
		return usageErr("resetlink takes exactly one USERNAME")
	}
	if expires <= 0 || expires > store.MaxResetTTL {
		return usageErr("--expires must be more than 0 and at most %s", store.MaxResetTTL)
	}
	if err := m.store.CheckSchema(ctx); err != nil {
		return fmt.Errorf("tenant %q: %w", m.tenant.Name, err)
	}
	username := fs.Arg(0)
	token, until, err := m.store.CreateResetToken(ctx, username, expires)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tenant %s has no active user %q (see the users page of the admin)", m.tenant.Name, username)
	}
	if err != nil {
		return fmt.Errorf("reset link for %q at tenant %s: %w", username, m.tenant.Name, err)
	}
	if u, err := m.store.ResetTokenUser(ctx, token); err == nil {
		if err := m.store.RecordHistory(ctx, store.ResetLinkIssued(store.CommandLine, u)); err != nil {
			return fmt.Errorf("reset link for %q at tenant %s: record it in the history: %w", username, m.tenant.Name, err)
		}
	}
	fmt.Fprintf(m.e.stderr, "One-time password reset link for %q at tenant %s, valid until %s:\n",
		username, m.tenant.Name, until.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(m.e.stdout, m.public.TenantURL(m.tenant.PrimaryHost, app.ResetPath(token)))
	return nil
}

func manageHistory(ctx context.Context, m *manageCtx, fs *flag.FlagSet, format string) error {
	if err := noArgs(fs); err != nil {
		return err
	}
	if format != "csv" && format != "json" {
		return usageErr("--format must be csv or json, not %q", format)
	}
	w := bufio.NewWriter(m.e.stdout)
	if err := m.store.ExportHistory(ctx, w, format); err != nil {
		return fmt.Errorf("history of tenant %q: %w", m.tenant.Name, err)
	}
	return w.Flush()
}
