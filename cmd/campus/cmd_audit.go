package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/campus-saas/campus/registry"
)

func runAudit(ctx context.Context, e *env, args []string) error {
	var (
		lo     logOptions
		ro     registryOptions
		q      registry.AuditQuery
		format string
	)
	fs := newFlags("audit", "", "List the audit trail of the control API and console, newest first: who (operator token), what, when, outcome.")
	fs.StringVar(&q.Target, "school", "", "only the entries of this school")
	fs.IntVar(&q.Limit, "limit", 50, fmt.Sprintf("at most this many entries (at most %d)", registry.MaxAuditLimit))
	fs.StringVar(&q.Before, "before", "", "only entries older than this entry ID (the next page)")
	fs.StringVar(&format, "format", "table", "table or json")
	lo.register(fs)
	ro.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErr("unexpected arguments: %s", joinArgs(fs.Args()))
	}
	if format != "table" && format != "json" {
		return usageErr("--format must be table or json, not %q", format)
	}
	reg, _, err := ro.openLogged(ctx, e, &lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	ops, ok := reg.(registry.Operators)
	if !ok {
		return fmt.Errorf("the %T registry keeps no audit trail", reg)
	}
	entries, err := ops.Audit(ctx, q)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		for _, en := range entries {
			if err := enc.Encode(en); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tOPERATOR\tACTION\tSCHOOL\tOUTCOME\tSTATUS\tDETAIL")
	for _, en := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", when(en.At), en.Operator, en.Action, orDash(en.Target), en.Outcome, en.Status, en.Detail)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
