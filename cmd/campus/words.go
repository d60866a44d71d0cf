package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/backends"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// describe words the typed errors of the tenant lifecycle (package
// tenancy) for an operator at the command line: the one place where they
// get the commands to run next. A typed error wrapped in context ("2
// tenants could not be purged: …") is worded in place; errors.Is and As
// still see the original; other errors pass unchanged.
func describe(err error) error {
	typed := firstTyped(err)
	if typed == nil {
		return err
	}
	text := word(typed).Error()
	if typed == err {
		return &worded{msg: text, err: err}
	}
	return &worded{msg: strings.Replace(err.Error(), typed.Error(), text, 1), err: err}
}

type worded struct {
	msg string
	err error
}

func (w *worded) Error() string { return w.msg }
func (w *worded) Unwrap() error { return w.err }

// firstTyped is the first error of package tenancy (or backends) in err's
// tree, in the order errors.As looks.
func firstTyped(err error) error {
	switch e := err.(type) {
	case nil, *worded:
		return nil
	case *tenancy.UnreachableError, *tenancy.UnknownTenantError, *tenancy.NameTakenError, *tenancy.HostTakenError,
		*tenancy.DatabaseNotEmptyError, *tenancy.WrongStateError, *tenancy.NotServedError, *tenancy.UndoneError,
		*tenancy.ForeignDatabaseError, *tenancy.SuperuserError, *tenancy.RestoreRefusedError, *tenancy.ArchiveTargetError,
		*backends.NoDataFolderError, *diskFullError:
		return err
	case interface{ Unwrap() error }:
		return firstTyped(e.Unwrap())
	case interface{ Unwrap() []error }:
		for _, u := range e.Unwrap() {
			if t := firstTyped(u); t != nil {
				return t
			}
		}
	}
	return nil
}

// word is the wording of one typed error.
func word(err error) error {
	var (
		unreachable *tenancy.UnreachableError
		unknown     *tenancy.UnknownTenantError
		nameTaken   *tenancy.NameTakenError
		hostTaken   *tenancy.HostTakenError
		notEmpty    *tenancy.DatabaseNotEmptyError
		wrongState  *tenancy.WrongStateError
		notServed   *tenancy.NotServedError
		undone      *tenancy.UndoneError
		foreign     *tenancy.ForeignDatabaseError
		superuser   *tenancy.SuperuserError
		refused     *tenancy.RestoreRefusedError
		target      *tenancy.ArchiveTargetError
		noData      *backends.NoDataFolderError
		diskFull    *diskFullError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &diskFull):
		return describeDiskFull(diskFull)
	case errors.As(err, &refused):
		return fmt.Errorf("%s: %w", refused.What, describe(refused.Err))
	case errors.As(err, &undone):
		cause := describeUserError(undone.Cause)
		if undone.UndoErr != nil {
			return fmt.Errorf("%s: %w; undoing it failed too (%v): remove what is left with `campus tenant purge %s`",
				undone.Failed, cause, undone.UndoErr, undone.Tenant.Name)
		}
		return fmt.Errorf("%s: %w; nothing was kept", undone.Failed, cause)
	case errors.As(err, &unreachable):
		return fmt.Errorf("cannot reach the database at %s (%s; address from %s; data folder %s).\n"+
			"Is `campus dev` running? It serves the embedded database; run this command while it runs, from the same folder "+
			"(or with the same --data). With your own MongoDB, set MONGODB_URI",
			tenancy.RedactURI(unreachable.URI), unreachable.Why, unreachable.From, unreachable.DataDir)
	case errors.As(err, &noData):
		return fmt.Errorf("%w.\n"+
			"Run this command from the folder where `campus dev` runs, or point to its data folder with --data DIR or CAMPUS_DATA=DIR "+
			"(with Consul, set CONSUL_HTTP_ADDR)", noData)
	case errors.As(err, &unknown):
		return fmt.Errorf("unknown tenant %q: no tenant has that name here (`campus tenant list` lists them; a deleted one shows in `campus tenant list --deleted`)", unknown.Name)
	case errors.As(err, &superuser):
		return fmt.Errorf("cannot create tenant %q: superuser %w; nothing was created", superuser.Name, describeUserError(superuser.Err))
	case errors.As(err, &nameTaken):
		t := nameTaken.Existing
		switch t.State {
		case registry.StateDeleted:
			return fmt.Errorf("cannot create tenant %q: a deleted tenant of that name (ID %s) keeps its data until %s. "+
				"Bring that school back with `campus tenant restore %s`, or remove it and its data for good with `campus tenant purge %s` first; nothing was created",
				t.Name, t.ID, t.PurgeAfter.Format(time.RFC3339), t.Name, t.Name)
		case registry.StateCreating:
			return fmt.Errorf("cannot create tenant %q: another create of it (ID %s, started %s) is running or was interrupted. "+
				"If none is running, remove what it left with `campus tenant purge %s`; nothing was created",
				t.Name, t.ID, t.CreatedAt.Format(time.RFC3339), t.Name)
		}
		return fmt.Errorf("cannot create tenant %q: a tenant with that name already exists; nothing was created", nameTaken.Name)
	case errors.As(err, &hostTaken):
		var nested *registry.HostTakenError
		if errors.As(hostTaken.Err, &nested) && nested.Near != "" {
			return fmt.Errorf("cannot create tenant %q: %v (a school's host may not be under or above another school's); nothing was created",
				hostTaken.Name, nested)
		}
		if o := hostTaken.Owner; o.State == registry.StateDeleted {
			return fmt.Errorf("cannot create tenant %q: host %s belongs to tenant %q, deleted with its data kept until %s; "+
				"a deleted tenant's hosts stay reserved for it until `campus tenant purge %s`; nothing was created",
				hostTaken.Name, hostTaken.Host, o.Name, o.PurgeAfter.Format(time.RFC3339), o.Name)
		}
		return fmt.Errorf("cannot create tenant %q: host %s already belongs to tenant %q; nothing was created", hostTaken.Name, hostTaken.Host, hostTaken.Owner.Name)
	case errors.As(err, &notEmpty):
		owner := "it is not stamped with a tenant ID (a tenant deleted with its data kept before tenant IDs existed?)"
		if notEmpty.Stamp != "" {
			owner = "it is stamped for tenant ID " + notEmpty.Stamp + ", which is not in the registry"
		}
		return fmt.Errorf("cannot create tenant %q: database %q already holds data and %s. Nothing was created; "+
			"a new school never gets old data. Drop that database yourself if it is not needed (mongosh: db.getSiblingDB(%q).dropDatabase())",
			notEmpty.Name, notEmpty.Database, owner, notEmpty.Database)
	case errors.As(err, &wrongState):
		return describeWrongState(wrongState)
	case errors.As(err, &notServed):
		t := notServed.Tenant
		switch t.State {
		case registry.StateDeleted:
			return fmt.Errorf("tenant %q is deleted (data kept until %s); bring it back with `campus tenant restore %s`",
				t.Name, t.PurgeAfter.Format(time.RFC3339), t.Name)
		case registry.StateCreating:
			return fmt.Errorf("tenant %q is still being created (if its create was interrupted: `campus tenant purge %s`)", t.Name, t.Name)
		}
		return fmt.Errorf("tenant %q is %s; resume it with `campus tenant resume %s`", t.Name, t.State, t.Name)
	case errors.As(err, &foreign):
		return fmt.Errorf("%s tenant %q: database %q is stamped for tenant ID %s, not for this tenant's ID %s; not dropping another tenant's data (nothing was purged)",
			foreign.Op, foreign.Tenant.Name, foreign.Tenant.Database, foreign.Stamp, foreign.Tenant.ID)
	case errors.As(err, &target):
		src, existing := target.Source, target.Existing
		switch {
		case existing.ID == src.ID && existing.State == registry.StateDeleted:
			return fmt.Errorf("restore: tenant %q (ID %s) is deleted but its data is kept until %s: bring it back as it is with "+
				"`campus tenant restore %s` (the name, not a file), or remove it with `campus tenant purge %s` first to restore the archive; nothing was restored",
				src.Name, src.ID, existing.PurgeAfter.Format(time.RFC3339), src.Name, src.Name)
		case existing.ID == src.ID:
			return fmt.Errorf("restore: tenant %q (ID %s) still exists (%s); a restore never writes over a school's data. "+
				"Restore it beside it with --as NEWNAME, or remove it first with `campus tenant delete %s --purge-data`; nothing was restored",
				src.Name, src.ID, existing.State, src.Name)
		}
		return fmt.Errorf("restore: the archive is of tenant %q ID %s, but that name now belongs to another school (ID %s); "+
			"restoring one school's archive over another is refused. Restore it under a new name with --as NEWNAME (it gets a new ID); nothing was restored",
			src.Name, src.ID, existing.ID)
	}
	return err
}

// diskFullError is a manage command stopped because the database could
// not save for lack of space; DataDir is campus dev's data folder when the
// database is its embedded one ("": a MongoDB server).
type diskFullError struct {
	Err     error
	DataDir string
}

func (e *diskFullError) Error() string { return e.Err.Error() }
func (e *diskFullError) Unwrap() error { return e.Err }

// describeDiskFull names the disk that is full and what to do, in place
// of the database's words (FerretDB's carry its Go stack).
func describeDiskFull(e *diskFullError) error {
	disk := "the disk of the MongoDB server is full"
	if e.DataDir != "" {
		disk = "the disk holding the data folder " + e.DataDir + " is full"
	}
	var full *store.StorageFullError
	msg := e.Err.Error()
	if errors.As(e.Err, &full) {
		msg = strings.ReplaceAll(msg, full.Error(), fmt.Sprintf("database %q cannot save: %s", full.Database, disk))
	} else {
		msg = disk
	}
	msg = store.StripServerStack(msg) // an undo's error may quote the server too
	return fmt.Errorf("%s.\nFree space on that disk (or make it larger), then run the command again; "+
		"the schools' pages keep answering meanwhile, and nothing needs a restart", msg)
}

func describeWrongState(e *tenancy.WrongStateError) error {
	t := e.Tenant
	switch e.Op {
	case "suspend", "resume":
		return fmt.Errorf("tenant %q is deleted; bring it back with `campus tenant restore %s`", t.Name, t.Name)
	case "delete":
		if t.State == registry.StateDeleted {
			return fmt.Errorf("tenant %q is already deleted; its data is kept until %s (`campus tenant restore %s` or `campus tenant purge %s`)",
				t.Name, t.PurgeAfter.Format(time.RFC3339), t.Name, t.Name)
		}
		return fmt.Errorf("tenant %q is being created (or its create was interrupted); if no create is running, remove it with `campus tenant purge %s`", t.Name, t.Name)
	case "purge":
		return fmt.Errorf("tenant %q is %s; delete it first (`campus tenant delete %s`), or use `campus tenant delete %s --purge-data`", t.Name, t.State, t.Name, t.Name)
	case "restore":
		return fmt.Errorf("tenant %q is %s, not deleted; nothing to restore", t.Name, t.State)
	}
	return e
}
