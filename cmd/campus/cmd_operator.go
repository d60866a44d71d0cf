package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/registry"
)

const operatorHelp = `Usage: campus operator token COMMAND [flags]

Operator tokens open the control API and console (campus control). A token
is shown once, when it is created; the registry keeps only its SHA-256.

Commands:
  token create NAME [--read-only]  create a token for NAME (a person or a
                                   system); --read-only may list and show only
  token list                       list tokens with their last use
  token revoke NAME|ID             revoke a token; it is refused at once
`

func runOperator(ctx context.Context, e *env, args []string) error {
	if len(args) < 2 || args[0] != "token" {
		fmt.Fprint(e.stdout, operatorHelp)
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			if len(args) == 0 {
				return usageErr("a COMMAND is required")
			}
			return errHelp
		}
		return usageErr("unknown operator command %q", joinArgs(args))
	}
	var (
		lo       logOptions
		ro       registryOptions
		readOnly bool
		fs       *flag.FlagSet
	)
	switch args[1] {
	case "create":
		fs = newFlags("operator token create", "NAME", "Create an operator token for the control API and console; it is printed once.")
		fs.BoolVar(&readOnly, "read-only", false, "the token may list and show schools, nothing else")
	case "list":
		fs = newFlags("operator token list", "", "List operator tokens (never the tokens themselves) with their last use.")
	case "revoke":
		fs = newFlags("operator token revoke", "NAME|ID", "Revoke an operator token; the control server refuses it from the next request on.")
	default:
		fmt.Fprint(e.stderr, operatorHelp)
		return usageErr("unknown operator token command %q%s", args[1], didYouMean(args[1], []string{"create", "list", "revoke"}))
	}
	lo.register(fs)
	ro.register(fs)
	if err := parseFlags(fs, args[2:], e); err != nil {
		return err
	}
	reg, _, err := ro.openLogged(ctx, e, &lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	ops, ok := reg.(registry.Operators)
	if !ok {
		return fmt.Errorf("the %T registry keeps no operator tokens", reg)
	}
	switch args[1] {
	case "create":
		if fs.NArg() != 1 {
			return usageErr("want exactly one NAME, got %d arguments", fs.NArg())
		}
		token, rec, err := registry.NewOperatorToken(fs.Arg(0), readOnly)
		if err != nil {
			return usageErr("%v", err)
		}
		if _, err := ops.CreateOperatorToken(ctx, rec); errors.Is(err, registry.ErrExists) {
			return fmt.Errorf("an operator token named %q exists; revoke it first (campus operator token revoke %s)", rec.Name, rec.Name)
		} else if err != nil {
			return err
		}
		kind := "read-write"
		if readOnly {
			kind = "read-only"
		}
		fmt.Fprintf(e.stderr, "Operator token %q (%s, ID %s). It is shown only now; keep it in a secret store:\n", rec.Name, kind, rec.ID)
		fmt.Fprintln(e.stdout, token)
	case "list":
		if fs.NArg() != 0 {
			return usageErr("unexpected arguments: %s", joinArgs(fs.Args()))
		}
		all, err := ops.OperatorTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tID\tRIGHTS\tCREATED\tLAST USED\tREVOKED")
		for _, o := range all {
			rights := "read-write"
			if o.ReadOnly {
				rights = "read-only"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Name, o.ID, rights, when(o.CreatedAt), when(o.LastUsed), when(o.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageErr("want exactly one NAME or ID, got %d arguments", fs.NArg())
		}
		o, err := ops.RevokeOperatorToken(ctx, fs.Arg(0))
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("no live operator token named %q (campus operator token list)", fs.Arg(0))
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "operator token %q (ID %s) revoked\n", o.Name, o.ID)
	}
	return nil
}

// when formats a time for a table, "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
