package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/campus-saas/campus/backup"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/tenancy"
)

// `campus tenant backup` and `campus tenant restore FILE`: one school's
// archive (format: backup/doc.go), written and restored all or nothing.

const backupDesc = "Write a consistent archive of one tenant: its registry record and every collection of its database " +
	"(students, users with their password hashes, history, …) except sessions, login attempts and one-time tokens. " +
	"The archive is gzip-compressed, versioned and checksummed (format: backup/doc.go); it is written to FILE.partial " +
	"and renamed to FILE only when complete. Consistency (--consistency): auto takes a snapshot on a MongoDB replica set " +
	"and reads live elsewhere (FerretDB, standalone mongod: writes during the backup may be partly in it); suspend shows " +
	"the maintenance page while the backup runs, for an exact copy anywhere; snapshot fails where there is none."

const restoreDesc = "With FILE (an archive of `campus tenant backup`): restore the school it holds. Without --as, into the " +
	"same tenant (same name, ID, hosts), which must not exist (after a purge); an archive of a school whose name now " +
	"belongs to another school (another ID) is refused. With --as NAME, as a new tenant with a new ID (refused if NAME " +
	"exists); --host replaces the archive's hosts, --display-name its display name (default with --as: the archive's followed by (NAME)). The whole archive and its checksum are verified before anything is " +
	"written; the database must be new and empty; the tenant is claimed (not served) while its data is written and " +
	"activated last; on any failure everything is undone. " +
	"With NAME: serve a deleted tenant again, with the same ID, data and hosts."

// backupFlags are the flags of `tenant backup` and `tenant restore`.
type backupFlags struct {
	output       string
	consistency  string
	drainTimeout time.Duration
	all          bool
	dir          string
	keep         int
	as           string
	hosts        stringList
	displayName  string
}

func (b *backupFlags) registerBackup(fs *flag.FlagSet) {
	fs.StringVar(&b.output, "o", "", "archive file to write (- for standard output) (default NAME-YYYYMMDDTHHMMSSZ.campus.gz)")
	fs.StringVar(&b.consistency, "consistency", "auto", "auto, snapshot (MongoDB replica set only), suspend (maintenance page during the backup) or live")
	fs.DurationVar(&b.drainTimeout, "drain-timeout", 10*time.Second, "with --consistency suspend: how long to wait for the tenant's apps to stop before reading anyway")
	fs.BoolVar(&b.all, "all", false, "back up every tenant (not those being created) into --dir, one after another; a failure is reported and the others go on")
	fs.StringVar(&b.dir, "dir", "", "with --all: folder of the archives, one subfolder per tenant (DIR/NAME/NAME-YYYYMMDDTHHMMSSZ.campus.gz)")
	fs.IntVar(&b.keep, "keep", 14, "with --all: archives kept per tenant, newest first (older ones are removed after a successful backup; a purged tenant's folder is never touched)")
}

func (b *backupFlags) registerRestore(fs *flag.FlagSet) {
	fs.StringVar(&b.as, "as", "", "restore FILE as a new tenant of this name, with a new ID (and, without --display-name, the archive's display name followed by (NAME))")
	fs.Var(&b.hosts, "host", "with FILE: host names of the restored tenant instead of the archive's (repeatable)")
	fs.StringVar(&b.displayName, "display-name", "", "with FILE: display name instead of the archive's")
}

func parseConsistency(s string) (backup.Consistency, error) {
	switch s {
	case "auto":
		return "", nil
	case "snapshot":
		return backup.Snapshot, nil
	case "live":
		return backup.Live, nil
	case "suspend":
		return backup.Suspended, nil
	}
	return "", usageErr("--consistency %q: want auto, snapshot, suspend or live", s)
}

func (tc *tenantCmd) backup(ctx context.Context, fs *flag.FlagSet, b *backupFlags) error {
	consistency, err := parseConsistency(b.consistency)
	if err != nil {
		return err
	}
	opts := tenancy.BackupOptions{Consistency: consistency, DrainTimeout: b.drainTimeout}
	if b.all {
		return tc.backupAll(ctx, fs, b, opts)
	}
	if b.dir != "" {
		return usageErr("--dir goes with --all; use -o FILE for one tenant")
	}
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := tc.m.Lookup(ctx, name)
	if err != nil {
		return err
	}
	path := b.output
	if path == "" {
		path = tenancy.ArchiveName(t.Name, time.Now())
	}
	var sum backup.Summary
	if path == "-" {
		sum, err = tc.m.Backup(ctx, t, tc.e.stdout, opts)
	} else {
		sum, err = tc.m.BackupToFile(ctx, t, path, opts)
	}
	if err != nil {
		return err
	}
	report, dest := tc.e.stdout, path
	if path == "-" {
		report, dest = tc.e.stderr, "standard output"
	}
	tc.printBackup(report, t, dest, sum)
	return nil
}

func (tc *tenantCmd) printBackup(w io.Writer, t registry.Tenant, dest string, sum backup.Summary) {
	fmt.Fprintf(w, "Backed up tenant %s (ID %s) to %s: %s; %d documents in all; consistency %s; SHA-256 %s.\n",
		t.Name, t.ID, dest, describeCounts(sum), sum.Trailer.Documents, sum.Header.Consistency, sum.Trailer.SHA256)
	if sum.Header.Consistency == backup.Live {
		fmt.Fprintf(w, "Note: read live (this server has no snapshot reads): writes made during the backup may be partly in it. "+
			"For an exact copy use --consistency suspend (maintenance page during the backup).\n")
	}
}

// backupAll backs up every tenant into b.dir and keeps the newest b.keep
// archives of each (for cron and the Nomad periodic job).
func (tc *tenantCmd) backupAll(ctx context.Context, fs *flag.FlagSet, b *backupFlags, opts tenancy.BackupOptions) error {
	switch {
	case fs.NArg() > 0:
		return usageErr("--all takes no NAME")
	case b.dir == "":
		return usageErr("--all needs --dir")
	case b.output != "":
		return usageErr("--all writes into --dir, not -o")
	case b.keep < 1:
		return usageErr("--keep must be at least 1")
	}
	n := 0
	err := tc.m.BackupAll(ctx, b.dir, b.keep, opts, func(r tenancy.BackupAllResult) {
		if r.Err != nil {
			fmt.Fprintf(tc.e.stderr, "campus tenant backup: %v\n", describe(r.Err))
			return
		}
		n++
		tc.printBackup(tc.e.stdout, r.Tenant, r.Path, r.Summary)
		for _, p := range r.Removed {
			fmt.Fprintf(tc.e.stdout, "Removed %s (more than %d archives of %s).\n", p, b.keep, r.Tenant.Name)
		}
	})
	fmt.Fprintf(tc.e.stdout, "Backed up %d tenants into %s.\n", n, b.dir)
	return err
}

func describeCounts(s backup.Summary) string {
	parts := make([]string, 0, len(s.Collections))
	for _, c := range s.Collections {
		parts = append(parts, fmt.Sprintf("%s %d", c, s.Trailer.Collections[c]))
	}
	return strings.Join(parts, ", ")
}

// isArchiveArg tells `tenant restore FILE` from `tenant restore NAME`:
// a tenant name is a DNS label, so anything else is a file; a name that is
// also a file here is ambiguous.
func isArchiveArg(arg string, asGiven bool) (bool, error) {
	if registry.ValidateName(arg) != nil {
		return true, nil
	}
	if asGiven {
		return true, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return false, usageErr("%q is both a tenant name and a file here: write ./%s to restore the file", arg, arg)
	}
	return false, nil
}

// restoreArchive restores the archive at path, all or nothing
// (tenancy.Manager.RestoreArchive: the saga of create).
func (tc *tenantCmd) restoreArchive(ctx context.Context, path string, b *backupFlags) error {
	if b.as != "" {
		if err := registry.ValidateName(b.as); err != nil {
			return usageErr("--as: tenant %v", err)
		}
	}
	if len(b.hosts) > 0 {
		if _, err := registry.NewTenant("check", b.hosts, ""); err != nil {
			return usageErr("%v", err)
		}
	}
	r, err := tc.m.RestoreArchive(ctx, path, tenancy.RestoreOptions{As: b.as, Hosts: b.hosts, DisplayName: b.displayName})
	if err != nil {
		return err
	}
	t := r.Tenant
	tc.printToken(t.Name, r.Token)
	how := "the same tenant (same ID)"
	if t.ID != r.Source.ID {
		how = fmt.Sprintf("a new tenant (new ID; the archive is of %s, ID %s)", r.Source.Name, r.Source.ID)
	}
	fmt.Fprintf(tc.e.stdout, "Restored tenant %s (%s), ID %s, from %s as %s: %s; database %q at schema version %d (archived at %d); hosts %s; %s.\n",
		t.Name, t.DisplayName, t.ID, path, how, describeCounts(r.Loaded), t.Database, r.To, r.From, strings.Join(t.Hosts, ", "), t.State)
	fmt.Fprintln(tc.e.stdout, "Sessions were not restored: everybody logs in again, with the same passwords.")
	return nil
}

// restoreNameOrArchive is `tenant restore`: an archive file, or the name
// of a deleted tenant.
func (tc *tenantCmd) restoreNameOrArchive(ctx context.Context, fs *flag.FlagSet, b *backupFlags) error {
	arg, err := oneName(fs)
	if err != nil {
		return usageErr("want exactly one tenant NAME or archive FILE, got %d arguments", fs.NArg())
	}
	archive, err := isArchiveArg(arg, b.as != "")
	if err != nil {
		return err
	}
	if archive {
		return tc.restoreArchive(ctx, arg, b)
	}
	if len(b.hosts) > 0 || b.displayName != "" {
		return usageErr("--host and --display-name go with an archive FILE, not a deleted tenant's NAME")
	}
	return tc.restore(ctx, fs)
}
