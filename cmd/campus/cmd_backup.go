package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/campus-saas/campus/backup"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
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
	"exists); --host replaces the archive's hosts. The whole archive and its checksum are verified before anything is " +
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
	fs.StringVar(&b.as, "as", "", "restore FILE as a new tenant of this name, with a new ID")
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

func (tc *tenantCmd) backup(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, b *backupFlags) error {
	if _, err := parseConsistency(b.consistency); err != nil {
		return err
	}
	if b.all {
		return tc.backupAll(ctx, reg, fs, b)
	}
	if b.dir != "" {
		return usageErr("--dir goes with --all; use -o FILE for one tenant")
	}
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := lookUp(ctx, reg, name)
	if err != nil {
		return err
	}
	return tc.backupOne(ctx, reg, t, b.output, b)
}

// backupAll backs up every tenant into b.dir and keeps the newest b.keep
// archives of each (for cron and the Nomad periodic job).
func (tc *tenantCmd) backupAll(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, b *backupFlags) error {
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
	all, err := reg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	var failed []string
	n := 0
	for _, t := range all {
		if t.State == registry.StateCreating {
			continue
		}
		err := func() error {
			dir := filepath.Join(b.dir, t.Name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("back up tenant %q: %w", t.Name, err)
			}
			if err := tc.backupOne(ctx, reg, t, filepath.Join(dir, defaultArchiveName(t.Name, time.Now())), b); err != nil {
				return err
			}
			return pruneArchives(dir, t.Name, b.keep, tc.e.stdout)
		}()
		if err != nil {
			fmt.Fprintf(tc.e.stderr, "campus tenant backup: %v\n", err)
			failed = append(failed, t.Name)
			continue
		}
		n++
	}
	fmt.Fprintf(tc.e.stdout, "Backed up %d tenants into %s.\n", n, b.dir)
	if len(failed) > 0 {
		return fmt.Errorf("%d tenants were not backed up (%s); the others were", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// pruneArchives keeps the newest keep archives of tenant in dir (their
// names sort by time) and removes the older ones.
func pruneArchives(dir, tenant string, keep int, out io.Writer) error {
	matches, err := filepath.Glob(filepath.Join(dir, tenant+"-*.campus.gz"))
	if err != nil {
		return err
	}
	var mine []string
	for _, m := range matches {
		stamp := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), tenant+"-"), ".campus.gz")
		if _, err := time.Parse("20060102T150405Z", stamp); err == nil {
			mine = append(mine, m)
		}
	}
	slices.Sort(mine)
	for len(mine) > keep {
		if err := os.Remove(mine[0]); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		fmt.Fprintf(out, "Removed %s (more than %d archives of %s).\n", mine[0], keep, tenant)
		mine = mine[1:]
	}
	return nil
}

// backupOne writes the archive of t to path (- for standard output).
func (tc *tenantCmd) backupOne(ctx context.Context, reg registry.Registry, t registry.Tenant, path string, b *backupFlags) error {
	want, err := parseConsistency(b.consistency)
	if err != nil {
		return err
	}
	if err := tenancy.CheckHasID(t); err != nil {
		return err
	}
	if t.State == registry.StateCreating {
		return &tenancy.NotServedError{Tenant: t}
	}
	uri, err := tc.mo.reach(ctx, tc.ro.data)
	if err != nil {
		return err
	}
	client, err := tenancy.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(t.Database)
	// Only a database stamped with this tenant's ID is backed up as its.
	if err := store.New(db, store.Options{}).CheckTenant(ctx, t.ID); err != nil {
		return fmt.Errorf("back up tenant %q: %w", t.Name, tenancy.DatabaseError(t, err))
	}
	if t.State != registry.StateActive && (want == "" || want == backup.Live) {
		want = backup.Suspended // not served: nobody writes through an app
	}
	if want == backup.Suspended && t.State == registry.StateActive {
		resume, err := tenancy.Drain(ctx, reg, t.Name, b.drainTimeout, tc.e.stderr)
		if err != nil {
			return fmt.Errorf("back up tenant %q: %w", t.Name, err)
		}
		defer func() {
			if err := resume(); err != nil {
				fmt.Fprintf(tc.e.stderr, "warning: tenant %s is still suspended: %v; resume it with `campus tenant resume %s`\n", t.Name, err, t.Name)
			}
		}()
	}

	if path == "" {
		path = defaultArchiveName(t.Name, time.Now())
	}
	out, commit, abort, err := createOutput(path, t.Name, tc.e.stdout)
	if err != nil {
		return err
	}
	sum, err := backup.Dump(ctx, db, out, backup.DumpOptions{Tenant: t, Consistency: want, CampusVersion: version})
	if err == nil {
		err = commit()
	}
	if err != nil {
		abort()
		return fmt.Errorf("%w; no archive was written", err)
	}
	report := tc.e.stdout
	if path == "-" {
		report = tc.e.stderr
	}
	dest := path
	if path == "-" {
		dest = "standard output"
	}
	fmt.Fprintf(report, "Backed up tenant %s (ID %s) to %s: %s; %d documents in all; consistency %s; SHA-256 %s.\n",
		t.Name, t.ID, dest, describeCounts(sum), sum.Trailer.Documents, sum.Header.Consistency, sum.Trailer.SHA256)
	if sum.Header.Consistency == backup.Live {
		fmt.Fprintf(report, "Note: read live (this server has no snapshot reads): writes made during the backup may be partly in it. "+
			"For an exact copy use --consistency suspend (maintenance page during the backup).\n")
	}
	return nil
}

func describeCounts(s backup.Summary) string {
	parts := make([]string, 0, len(s.Collections))
	for _, c := range s.Collections {
		parts = append(parts, fmt.Sprintf("%s %d", c, s.Trailer.Collections[c]))
	}
	return strings.Join(parts, ", ")
}

func defaultArchiveName(tenant string, at time.Time) string {
	return tenant + "-" + at.UTC().Format("20060102T150405Z") + ".campus.gz"
}

// createOutput opens where the archive goes. A file is written as
// FILE.partial and renamed by commit once complete and synced, so a file
// of the final name is always a whole archive; abort removes the partial.
func createOutput(path, tenant string, stdout io.Writer) (w io.Writer, commit func() error, abort func(), err error) {
	if path == "-" {
		return stdout, func() error { return nil }, func() {}, nil
	}
	if _, err := os.Stat(path); err == nil {
		return nil, nil, nil, fmt.Errorf("back up tenant %q: %s already exists; not overwriting an archive", tenant, path)
	}
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("back up tenant %q: %w", tenant, err)
	}
	commit = func() error {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", partial, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", partial, err)
		}
		if err := os.Rename(partial, path); err != nil {
			return fmt.Errorf("rename %s: %w", partial, err)
		}
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
		return nil
	}
	abort = func() {
		f.Close()
		os.Remove(partial)
	}
	return f, commit, abort, nil
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

// restoreHooks let tests fail a restore between its steps; nil otherwise.
var restoreHooks struct {
	beforeBatch    func(collection string, n int) error
	beforeActivate func(registry.Tenant) error
}

// restoreArchive restores the archive at path, all or nothing, with the
// machinery of create:
//
//  1. Verify the whole archive (format, every line, counts, checksum) and
//     decide the tenant to restore into: the archive's own (same name and
//     ID; refused while a tenant of that name exists, whatever its ID, or
//     another tenant has that ID) or, with --as, a new one with a new ID.
//     Check that its name, hosts and database are free and the database
//     empty.
//  2. Claim the tenant in state creating (not routed, not supervised).
//  3. Write the documents (verifying the archive again as they are read),
//     stamp the database with the tenant's ID and migrate it to this
//     binary's schema, issue its token, and activate it last.
//
// A failure in 3 drops the database (empty before) and removes the claim
// by ID; a failure in 1 or 2 has written nothing.
func (tc *tenantCmd) restoreArchive(ctx context.Context, reg registry.Registry, path string, b *backupFlags) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	sum, err := backup.Verify(f)
	if err != nil {
		return fmt.Errorf("restore %s: %w; nothing was restored", path, err)
	}
	src := sum.Tenant
	t, err := restoreTarget(ctx, reg, src, b)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("restore %s as tenant %q", path, t.Name)
	if err := checkFree(ctx, reg, t); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	all, err := reg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	for _, o := range all {
		if o.Database == t.Database {
			return fmt.Errorf("%s: database %q belongs to tenant %q; a restore never writes into another tenant's database; nothing was restored", what, t.Database, o.Name)
		}
		if o.ID == t.ID {
			return fmt.Errorf("%s: tenant %q already has ID %s; nothing was restored", what, o.Name, t.ID)
		}
	}
	uri, err := tc.mo.reach(ctx, tc.ro.data)
	if err != nil {
		return err
	}
	client, err := tenancy.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(t.Database)
	st := store.New(db, store.Options{})
	if err := checkEmptyDatabase(ctx, st, t.Name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}

	final := registry.StateActive
	if src.State == registry.StateSuspended && b.as == "" {
		final = registry.StateSuspended
	}
	t.State = registry.StateCreating
	claimed, err := reg.CreateTenant(ctx, t)
	if err != nil {
		return createError(ctx, reg, t, err)
	}
	fail := func(step string, cause error, dropDB bool) error {
		return tc.undoClaim(ctx, reg, st, claimed, what+": "+step, cause, dropDB)
	}
	if err := checkEmptyDatabase(ctx, st, t.Name); err != nil {
		return fail("database check", err, false)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail("read the archive again", err, false)
	}
	loaded, err := backup.Load(ctx, f, db, backup.LoadOptions{BeforeBatch: restoreHooks.beforeBatch})
	if err != nil {
		return fail("write the documents", err, true)
	}
	if loaded.Trailer.SHA256 != sum.Trailer.SHA256 {
		return fail("read the archive again", errors.New("the file changed while it was restored"), true)
	}
	from, to, err := st.MigrateTenant(ctx, claimed.ID)
	if err != nil {
		return fail(fmt.Sprintf("migrate database %q", t.Database), err, true)
	}
	if tc.creds(reg) != nil {
		if err := tc.issueToken(ctx, reg, claimed.Name); err != nil {
			return fail("issue the tenant's Consul ACL token", err, true)
		}
	}
	if h := restoreHooks.beforeActivate; h != nil {
		if err := h(claimed); err != nil {
			return fail("test hook", err, true)
		}
	}
	if claimed, err = reg.SetState(ctx, claimed.Name, final); err != nil {
		return fail("activate", err, true)
	}
	how := "the same tenant (same ID)"
	if claimed.ID != src.ID {
		how = fmt.Sprintf("a new tenant (new ID; the archive is of %s, ID %s)", src.Name, src.ID)
	}
	fmt.Fprintf(tc.e.stdout, "Restored tenant %s (ID %s) from %s as %s: %s; database %q at schema version %d (archived at %d); hosts %s; %s.\n",
		claimed.Name, claimed.ID, path, how, describeCounts(loaded), claimed.Database, to, from, strings.Join(claimed.Hosts, ", "), claimed.State)
	fmt.Fprintln(tc.e.stdout, "Sessions were not restored: everybody logs in again, with the same passwords.")
	return nil
}

// restoreTarget is the tenant an archive of src is restored into.
func restoreTarget(ctx context.Context, reg registry.Registry, src registry.Tenant, b *backupFlags) (registry.Tenant, error) {
	t := src // fields this binary knows, including ones added later (idle timeouts, …)
	t.DeletedAt, t.PurgeAfter = time.Time{}, time.Time{}
	if b.as != "" {
		if err := registry.ValidateName(b.as); err != nil {
			return registry.Tenant{}, usageErr("--as: tenant %v", err)
		}
		t.ID, t.Name, t.Database, t.CreatedAt = registry.NewID(), b.as, b.as, time.Time{}
	} else {
		existing, err := reg.Tenant(ctx, src.Name)
		switch {
		case err == nil && existing.ID == src.ID && existing.State == registry.StateDeleted:
			return registry.Tenant{}, fmt.Errorf("restore: tenant %q (ID %s) is deleted but its data is kept until %s: bring it back as it is with "+
				"`campus tenant restore %s` (the name, not a file), or remove it with `campus tenant purge %s` first to restore the archive; nothing was restored",
				src.Name, src.ID, existing.PurgeAfter.Format(time.RFC3339), src.Name, src.Name)
		case err == nil && existing.ID == src.ID:
			return registry.Tenant{}, fmt.Errorf("restore: tenant %q (ID %s) still exists (%s); a restore never writes over a school's data. "+
				"Restore it beside it with --as NEWNAME, or remove it first with `campus tenant delete %s --purge-data`; nothing was restored",
				src.Name, src.ID, existing.State, src.Name)
		case err == nil:
			return registry.Tenant{}, fmt.Errorf("restore: the archive is of tenant %q ID %s, but that name now belongs to another school (ID %s); "+
				"restoring one school's archive over another is refused. Restore it under a new name with --as NEWNAME (it gets a new ID); nothing was restored",
				src.Name, src.ID, existing.ID)
		case !errors.Is(err, registry.ErrNotFound):
			return registry.Tenant{}, fmt.Errorf("look up tenant %q: %w", src.Name, err)
		}
	}
	if b.displayName != "" {
		t.DisplayName = strings.TrimSpace(b.displayName)
	}
	if len(b.hosts) > 0 {
		nt, err := registry.NewTenant(t.Name, b.hosts, t.DisplayName)
		if err != nil {
			return registry.Tenant{}, usageErr("%v", err)
		}
		t.Hosts, t.PrimaryHost = nt.Hosts, nt.PrimaryHost
	}
	t.State = registry.StateCreating
	if err := t.Validate(); err != nil {
		return registry.Tenant{}, fmt.Errorf("restore: %w", err)
	}
	return t, nil
}

// restoreNameOrArchive is `tenant restore`: an archive file, or the name
// of a deleted tenant.
func (tc *tenantCmd) restoreNameOrArchive(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, b *backupFlags) error {
	arg, err := oneName(fs)
	if err != nil {
		return usageErr("want exactly one tenant NAME or archive FILE, got %d arguments", fs.NArg())
	}
	archive, err := isArchiveArg(arg, b.as != "")
	if err != nil {
		return err
	}
	if archive {
		return tc.restoreArchive(ctx, reg, arg, b)
	}
	if len(b.hosts) > 0 || b.displayName != "" {
		return usageErr("--host and --display-name go with an archive FILE, not a deleted tenant's NAME")
	}
	return tc.restore(ctx, reg, fs)
}
