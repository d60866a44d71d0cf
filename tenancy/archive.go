package tenancy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/backup"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// One school's archive (format: backup/doc.go), written and restored all
// or nothing.

// BackupOptions choose how a backup reads.
type BackupOptions struct {
	// Consistency: "" (auto: a snapshot where the server has them, else
	// live), backup.Snapshot, backup.Suspended or backup.Live.
	Consistency backup.Consistency
	// DrainTimeout is how long a Suspended backup waits for the tenant's
	// apps to stop before reading anyway.
	DrainTimeout time.Duration
}

// Backup writes the archive of t to w. Only a database stamped with t's
// ID is backed up as t's; a tenant being created is not backed up.
func (m *Manager) Backup(ctx context.Context, t registry.Tenant, w io.Writer, o BackupOptions) (backup.Summary, error) {
	if err := CheckHasID(t); err != nil {
		return backup.Summary{}, err
	}
	if t.State == registry.StateCreating {
		return backup.Summary{}, &NotServedError{Tenant: t}
	}
	uri, err := m.URI(ctx)
	if err != nil {
		return backup.Summary{}, err
	}
	client, err := Connect(ctx, uri)
	if err != nil {
		return backup.Summary{}, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(t.Database)
	if err := store.New(db, store.Options{}).CheckTenant(ctx, t.ID); err != nil {
		return backup.Summary{}, fmt.Errorf("back up tenant %q: %w", t.Name, DatabaseError(t, err))
	}
	want := o.Consistency
	if t.State != registry.StateActive && (want == "" || want == backup.Live) {
		want = backup.Suspended // not served: nobody writes through an app
	}
	if want == backup.Suspended && t.State == registry.StateActive {
		resume, err := Drain(ctx, m.Registry, t.Name, o.DrainTimeout, m.Notes)
		if err != nil {
			return backup.Summary{}, fmt.Errorf("back up tenant %q: %w", t.Name, err)
		}
		defer func() {
			if err := resume(); err != nil {
				fmt.Fprintf(m.notes(), "warning: tenant %s is still suspended: %v; resume it with `campus tenant resume %s`\n", t.Name, err, t.Name)
			}
		}()
	}
	sum, err := backup.Dump(ctx, db, w, backup.DumpOptions{Tenant: t, Consistency: want, CampusVersion: m.Version})
	if err != nil {
		return backup.Summary{}, err
	}
	return sum, nil
}

// BackupToFile writes the archive of t to path: as path.partial, renamed
// to path only once complete and synced, so a file of the final name is
// always a whole archive. An existing path is never overwritten.
func (m *Manager) BackupToFile(ctx context.Context, t registry.Tenant, path string, o BackupOptions) (backup.Summary, error) {
	dir, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return backup.Summary{}, fmt.Errorf("back up tenant %q: %w", t.Name, err)
	}
	defer dir.Close()
	return m.backupInto(ctx, dir, filepath.Base(path), t, o)
}

// backupInto writes the archive of t as name in dir.
func (m *Manager) backupInto(ctx context.Context, dir *os.Root, name string, t registry.Tenant, o BackupOptions) (backup.Summary, error) {
	if _, err := dir.Lstat(name); err == nil {
		return backup.Summary{}, fmt.Errorf("back up tenant %q: %s already exists; not overwriting an archive", t.Name, filepath.Join(dir.Name(), name))
	}
	partial := name + ".partial"
	f, err := dir.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return backup.Summary{}, fmt.Errorf("back up tenant %q: %w", t.Name, err)
	}
	sum, err := m.Backup(ctx, t, f, o)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dir.Rename(partial, name)
	}
	if err != nil {
		dir.Remove(partial)
		return backup.Summary{}, fmt.Errorf("%w; no archive was written", err)
	}
	if d, err := dir.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	return sum, nil
}

// ArchiveName is the file name of an archive of tenant taken at at.
func ArchiveName(tenant string, at time.Time) string {
	return tenant + "-" + at.UTC().Format(archiveStamp) + archiveSuffix
}

const (
	archiveStamp  = "20060102T150405Z"
	archiveSuffix = ".campus.gz"
)

// BackupAllResult is one tenant's part of BackupAll.
type BackupAllResult struct {
	Tenant  registry.Tenant
	Path    string // the archive written
	Summary backup.Summary
	Removed []string // older archives removed (retention)
	Err     error
}

// BackupAll backs up every tenant (not those being created) into dir, one
// subfolder per tenant (DIR/NAME/NAME-YYYYMMDDTHHMMSSZ.campus.gz), and
// keeps the newest keep archives of each; report, when set, gets each
// tenant's result as it is done. A failure is reported and the others go
// on; the error names the tenants that failed.
//
// Only dir itself may be a symbolic link: a tenant folder that is a link,
// or not a folder, is refused (nothing is written through it), and
// retention removes only regular files whose name is the tenant's archive
// name and whose first line is an archive of that tenant (its ID): a file
// Campus did not write is never deleted.
func (m *Manager) BackupAll(ctx context.Context, dir string, keep int, o BackupOptions, report func(BackupAllResult)) error {
	if keep < 1 {
		return errors.New("keep at least 1 archive")
	}
	all, err := m.Registry.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("backup folder: %w", err)
	}
	defer root.Close()
	var failed []string
	for _, t := range all {
		if t.State == registry.StateCreating {
			continue
		}
		r := m.backupOneInto(ctx, root, t, keep, o)
		if report != nil {
			report(r)
		}
		if r.Err != nil {
			failed = append(failed, t.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d tenants were not backed up (%s); the others were", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

func (m *Manager) backupOneInto(ctx context.Context, root *os.Root, t registry.Tenant, keep int, o BackupOptions) (r BackupAllResult) {
	r.Tenant = t
	sub, err := tenantFolder(root, t.Name)
	if err != nil {
		r.Err = fmt.Errorf("back up tenant %q: %w", t.Name, err)
		return r
	}
	defer sub.Close()
	name := ArchiveName(t.Name, m.now())
	r.Path = filepath.Join(root.Name(), t.Name, name)
	if r.Summary, r.Err = m.backupInto(ctx, sub, name, t, o); r.Err != nil {
		return r
	}
	r.Removed, r.Err = pruneArchives(sub, t, keep)
	for i, n := range r.Removed {
		r.Removed[i] = filepath.Join(root.Name(), t.Name, n)
	}
	return r
}

// tenantFolder opens (making it if needed) the folder of tenant in root:
// a real folder, never a symbolic link.
func tenantFolder(root *os.Root, tenant string) (*os.Root, error) {
	if err := registry.ValidateName(tenant); err != nil {
		return nil, err
	}
	if err := root.Mkdir(tenant, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	st, err := root.Lstat(tenant)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder (a symbolic link or a file); nothing is written through it",
			filepath.Join(root.Name(), tenant))
	}
	return root.OpenRoot(tenant)
}

// pruneArchives keeps the newest keep archives of t in dir (their names
// sort by time) and removes the older ones: only regular files named as
// t's archives whose header is an archive of t.
func pruneArchives(dir *os.Root, t registry.Tenant, keep int) ([]string, error) {
	d, err := dir.Open(".")
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	var mine []string
	for _, e := range entries {
		if e.Type().IsRegular() && isArchiveName(e.Name(), t.Name) && isArchiveOf(dir, e.Name(), t) {
			mine = append(mine, e.Name())
		}
	}
	slices.Sort(mine)
	var removed []string
	for len(mine) > keep {
		if err := dir.Remove(mine[0]); err != nil {
			return removed, fmt.Errorf("retention: %w", err)
		}
		removed = append(removed, mine[0])
		mine = mine[1:]
	}
	return removed, nil
}

// isArchiveName reports whether name is tenant's archive name.
func isArchiveName(name, tenant string) bool {
	stamp, ok := strings.CutPrefix(name, tenant+"-")
	if !ok || path.Base(name) != name {
		return false
	}
	stamp, ok = strings.CutSuffix(stamp, archiveSuffix)
	if !ok {
		return false
	}
	_, err := time.Parse(archiveStamp, stamp)
	return err == nil
}

// isArchiveOf reports whether the file name in dir starts as an archive
// of t (format and tenant ID).
func isArchiveOf(dir *os.Root, name string, t registry.Tenant) bool {
	f, err := dir.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	_, at, err := backup.ReadHeader(f)
	return err == nil && at.ID == t.ID
}

// RestoreOptions choose the tenant an archive is restored into.
type RestoreOptions struct {
	// As, when set, restores the archive as a new tenant of this name,
	// with a new ID; else into the archive's own tenant (name and ID),
	// which must not exist.
	As string
	// Hosts, when set, replace the archive's.
	Hosts []string
	// DisplayName, when set, replaces the archive's. With As and no
	// DisplayName, the archive's gets the new name added ("Nairobi School
	// (nairobi2)"), so that two schools never show the same name.
	DisplayName string
}

// Restored is the outcome of RestoreArchive.
type Restored struct {
	Created
	Source   registry.Tenant // the tenant the archive holds
	Loaded   backup.Summary
	From, To int // schema versions: archived, now
}

// RestoreArchive restores the archive at path, all or nothing, with the
// saga of Create:
//
//  1. Verify the whole archive (format, every line, counts, checksum) and
//     decide the tenant to restore into (see RestoreOptions). Check that
//     its name, hosts and database are free and the database empty.
//  2. Claim the tenant in state creating (not routed, not supervised).
//  3. Write the documents (verifying the archive again as they are read),
//     stamp the database with the tenant's ID and migrate it to this
//     binary's schema, issue its token, and activate it last (suspended
//     again when the archive's own tenant was suspended).
//
// A failure in 3 drops the database (empty before) and removes the claim
// by ID; a failure in 1 or 2 has written nothing.
func (m *Manager) RestoreArchive(ctx context.Context, path string, o RestoreOptions) (Restored, error) {
	f, err := os.Open(path)
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	sum, err := backup.Verify(f)
	if err != nil {
		return Restored{}, fmt.Errorf("restore %s: %w; nothing was restored", path, err)
	}
	src := sum.Tenant
	t, err := m.restoreTarget(ctx, src, o)
	if err != nil {
		return Restored{}, err
	}
	what := fmt.Sprintf("restore %s as tenant %q", path, t.Name)
	final := registry.StateActive
	if src.State == registry.StateSuspended && o.As == "" {
		final = registry.StateSuspended
	}
	res := Restored{Source: src}
	notOthers := func(ctx context.Context) error {
		all, err := m.Registry.Tenants(ctx)
		if err != nil {
			return fmt.Errorf("read registry: %w", err)
		}
		for _, other := range all {
			if other.Database == t.Database {
				return fmt.Errorf("%s: database %q belongs to tenant %q; a restore never writes into another tenant's database; nothing was restored", what, t.Database, other.Name)
			}
			if other.ID == t.ID {
				return fmt.Errorf("%s: tenant %q already has ID %s; nothing was restored", what, other.Name, t.ID)
			}
		}
		return nil
	}
	created, err := m.saga(ctx, t, final, what, notOthers, func(ctx context.Context, db *mongo.Database, st *store.Store, claimed registry.Tenant) (string, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "read the archive again", err
		}
		loaded, err := backup.Load(ctx, f, db, backup.LoadOptions{BeforeBatch: m.Hooks.BeforeBatch})
		if err != nil {
			return "write the documents", err
		}
		if loaded.Trailer.SHA256 != sum.Trailer.SHA256 {
			return "read the archive again", errors.New("the file changed while it was restored")
		}
		res.Loaded = loaded
		if res.From, res.To, err = st.MigrateTenant(ctx, claimed.ID); err != nil {
			return fmt.Sprintf("migrate database %q", t.Database), err
		}
		return "", nil
	})
	if err != nil {
		var taken *NameTakenError
		var host *HostTakenError
		var notEmpty *DatabaseNotEmptyError
		if errors.As(err, &taken) || errors.As(err, &host) || errors.As(err, &notEmpty) {
			return Restored{}, &RestoreRefusedError{What: what, Err: err}
		}
		return Restored{}, err
	}
	res.Created = created
	return res, nil
}

// RestoreRefusedError is a restore refused before anything was written
// because its name, hosts or database are taken.
type RestoreRefusedError struct {
	What string
	Err  error
}

func (e *RestoreRefusedError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *RestoreRefusedError) Unwrap() error { return e.Err }

// ArchiveTargetError is an archive whose own tenant cannot be restored as
// it is: Existing holds its name (deleted with the same ID, live with the
// same ID, or another school).
type ArchiveTargetError struct {
	Source, Existing registry.Tenant
}

func (e *ArchiveTargetError) Error() string {
	return fmt.Sprintf("restore: tenant %q of the archive (ID %s) exists (ID %s, %s); nothing was restored",
		e.Source.Name, e.Source.ID, e.Existing.ID, e.Existing.State)
}

// restoreTarget is the tenant an archive of src is restored into.
func (m *Manager) restoreTarget(ctx context.Context, src registry.Tenant, o RestoreOptions) (registry.Tenant, error) {
	t := src // fields this binary knows, including ones added later (idle timeouts, …)
	t.DeletedAt, t.PurgeAfter = time.Time{}, time.Time{}
	if o.As != "" {
		if err := registry.ValidateName(o.As); err != nil {
			return registry.Tenant{}, fmt.Errorf("tenant %w", err)
		}
		t.ID, t.Name, t.Database, t.CreatedAt = registry.NewID(), o.As, o.As, time.Time{}
	} else {
		existing, err := m.Registry.Tenant(ctx, src.Name)
		switch {
		case err == nil:
			return registry.Tenant{}, &ArchiveTargetError{Source: src, Existing: existing}
		case !errors.Is(err, registry.ErrNotFound):
			return registry.Tenant{}, fmt.Errorf("look up tenant %q: %w", src.Name, err)
		}
	}
	switch {
	case o.DisplayName != "":
		t.DisplayName = strings.TrimSpace(o.DisplayName)
	case o.As != "":
		t.DisplayName = fmt.Sprintf("%s (%s)", src.DisplayName, o.As)
	}
	if len(o.Hosts) > 0 {
		nt, err := registry.NewTenant(t.Name, o.Hosts, t.DisplayName)
		if err != nil {
			return registry.Tenant{}, err
		}
		t.Hosts, t.PrimaryHost = nt.Hosts, nt.PrimaryHost
	}
	t.State = registry.StateCreating
	if err := t.Validate(); err != nil {
		return registry.Tenant{}, fmt.Errorf("restore: %w", err)
	}
	return t, nil
}
