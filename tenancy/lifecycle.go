package tenancy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/store"
)

// Registry is the part of the registry the lifecycle uses.
type Registry interface {
	Tenant(ctx context.Context, name string) (registry.Tenant, error)
	Tenants(ctx context.Context) ([]registry.Tenant, error)
	CreateTenant(ctx context.Context, t registry.Tenant) (registry.Tenant, error)
	SetState(ctx context.Context, name string, state registry.State) (registry.Tenant, error)
	MarkDeleted(ctx context.Context, name string, purgeAfter time.Time) (registry.Tenant, error)
	RestoreTenant(ctx context.Context, name string) (registry.Tenant, error)
	PurgeTenant(ctx context.Context, name, id string) error
	Watch(ctx context.Context, after uint64) (registry.Snapshot, error)
}

// Credentials issue each tenant a credential of its own (Consul ACL
// tokens: registry/consul/acl.go).
type Credentials interface {
	TenantToken(ctx context.Context, tenant string, rotate bool) (string, error)
	RevokeTenantToken(ctx context.Context, tenant string) error
}

// Hooks stop an operation between its steps (tests); nil fields do
// nothing.
type Hooks struct {
	// BeforeClaim runs after every check of a create, before the
	// registry write.
	BeforeClaim func(registry.Tenant)
	// BeforeActivate runs when a create's or restore's data is written;
	// an error fails it (and undoes it).
	BeforeActivate func(registry.Tenant) error
	// BeforeBatch runs before each batch of documents a restore writes;
	// an error fails it.
	BeforeBatch func(collection string, n int) error
	// BeforeMigrate runs before a fleet migration migrates a tenant; an
	// error fails that tenant.
	BeforeMigrate func(registry.Tenant) error
	// AfterDrop runs when a purge has dropped the tenant's database.
	AfterDrop func(registry.Tenant)
}

// Manager runs the tenant lifecycle over one registry and one database
// server.
type Manager struct {
	Registry Registry
	Database DatabaseAddress
	// Credentials, when set, are issued on create and restore and
	// revoked on delete and purge.
	Credentials Credentials
	// Now is the clock (time.Now when nil).
	Now   func() time.Time
	Hooks Hooks
	// Logger gets what migrations report (nothing when nil).
	Logger *slog.Logger
	// Notes receives notes that are not errors: a drained tenant whose
	// apps are still registered, a tenant left suspended (nothing when
	// nil).
	Notes io.Writer
	// Version is this binary's version, written into archives.
	Version string
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (m *Manager) notes() io.Writer {
	if m.Notes != nil {
		return m.Notes
	}
	return io.Discard
}

// URI resolves the database address and checks that something answers
// there (an *UnreachableError otherwise).
func (m *Manager) URI(ctx context.Context) (string, error) {
	uri, from, err := m.Database.Resolve()
	if err != nil {
		return "", err
	}
	if err := Probe(ctx, uri, from, m.Database.DataDir); err != nil {
		return "", err
	}
	return uri, nil
}

// Lookup reads one tenant: an *UnknownTenantError for a name the registry
// does not hold.
func (m *Manager) Lookup(ctx context.Context, name string) (registry.Tenant, error) {
	t, err := m.Registry.Tenant(ctx, name)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return registry.Tenant{}, &UnknownTenantError{Name: name}
		}
		return registry.Tenant{}, fmt.Errorf("look up tenant %q: %w", name, err)
	}
	return t, nil
}

// Open opens t's database for a command that reads or changes it: t must
// be served (active or suspended; also deleted when deletedOK) and its
// database stamped with t's ID. With stamp, an unstamped database is
// accepted (`manage migrate` stamps it; one stamped for another ID is
// still refused when migrated).
func (m *Manager) Open(ctx context.Context, t registry.Tenant, deletedOK, stamp bool) (*store.Store, error) {
	if t.State == registry.StateCreating || t.State == registry.StateDeleted && !deletedOK {
		return nil, &NotServedError{Tenant: t}
	}
	uri, err := m.URI(ctx)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, uri, t.Database)
	if err != nil {
		return nil, err
	}
	if err := CheckHasID(t); err != nil {
		st.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if !stamp {
		if err := CheckDatabase(ctx, st, t); err != nil {
			st.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return st, nil
}

// TokenResult says what happened to a tenant's credential.
type TokenResult int

const (
	TokenNone        TokenResult = iota // no Credentials
	TokenIssued                         // the tenant has its token
	TokenACLDisabled                    // Consul runs without ACLs: nothing to issue
)

// issueToken creates the tenant's app token.
func (m *Manager) issueToken(ctx context.Context, name string) (TokenResult, error) {
	if m.Credentials == nil {
		return TokenNone, nil
	}
	_, err := m.Credentials.TenantToken(ctx, name, false)
	if errors.Is(err, consul.ErrACLDisabled) {
		return TokenACLDisabled, nil
	}
	if err != nil {
		return TokenNone, err
	}
	return TokenIssued, nil
}

// revokeToken revokes the tenant's app token, if there are credentials.
func (m *Manager) revokeToken(ctx context.Context, name string) error {
	if m.Credentials == nil {
		return nil
	}
	if err := m.Credentials.RevokeTenantToken(ctx, name); err != nil && !errors.Is(err, consul.ErrACLDisabled) {
		return fmt.Errorf("revoke the Consul ACL token of %s: %w", name, err)
	}
	return nil
}

// NewTenant is what Create needs.
type NewTenant struct {
	Name        string
	Hosts       []string // the first is the primary host
	DisplayName string
	// Superuser, when set, is created with SuperuserEmail and
	// SuperuserPassword.
	Superuser, SuperuserEmail, SuperuserPassword string
	// Invite (the control API) creates Superuser with a random password
	// nobody knows and returns a one-time set-password token in
	// Created.Invite: the first superuser chooses a password in the
	// browser (SuperuserPassword is ignored).
	Invite bool
}

// InviteTTL is how long the first superuser's set-password link of an
// invited create works.
const InviteTTL = store.MaxResetTTL

// InviteActor is who the school's history names for the invite link.
var InviteActor = store.Actor{Username: "(control API)"}

// Created is the outcome of Create and RestoreArchive.
type Created struct {
	Tenant registry.Tenant
	Token  TokenResult
	// Invite is the set-password token of an invited superuser (see
	// NewTenant.Invite), valid until InviteExpires; shown once, never
	// stored (the school keeps its SHA-256).
	Invite        string
	InviteExpires time.Time
}

// SuperuserError is a superuser that cannot be created: Err holds
// store.FieldErrors.
type SuperuserError struct {
	Name string
	Err  error
}

func (e *SuperuserError) Error() string {
	return fmt.Sprintf("cannot create tenant %q: superuser: %v; nothing was created", e.Name, e.Err)
}

func (e *SuperuserError) Unwrap() error { return e.Err }

// Create registers a tenant all or nothing:
//
//  1. Check everything that can be checked without writing: the name and
//     hosts are valid, the superuser's username, email and password, that
//     the database is reachable, that the name and hosts are free in the
//     registry and that the database is empty.
//  2. Claim the name and hosts in the registry in state "creating": one
//     atomic write, so of two creates of one name exactly one gets here.
//     A creating tenant is neither routed nor supervised.
//  3. Migrate the database, stamping it with the new tenant ID; create the
//     superuser; issue the token; set the tenant active.
//
// A failure in 3 undoes 2 and 3 (an *UndoneError): the database (empty
// before we began) is dropped and the registry entry removed, by ID. A
// create that loses the claim in 2 has written nothing and touches no
// database.
func (m *Manager) Create(ctx context.Context, n NewTenant) (Created, error) {
	if n.Invite {
		if n.Superuser == "" {
			return Created{}, &SuperuserError{Name: n.Name, Err: store.FieldErrors{"username": "an invited superuser needs a username"}}
		}
		n.SuperuserPassword = randomPassword()
	}
	if n.Superuser != "" {
		if fe := store.ValidateSuperuser(n.Superuser, n.SuperuserEmail, n.SuperuserPassword); fe != nil {
			return Created{}, &SuperuserError{Name: n.Name, Err: fe}
		}
	}
	t, err := registry.NewTenant(n.Name, n.Hosts, n.DisplayName)
	if err != nil {
		return Created{}, err
	}
	t.State = registry.StateCreating
	var invite string
	var inviteExpires time.Time
	created, err := m.saga(ctx, t, registry.StateActive, fmt.Sprintf("cannot create tenant %q", n.Name), nil, func(ctx context.Context, _ *mongo.Database, st *store.Store, claimed registry.Tenant) (string, error) {
		if _, _, err := st.MigrateTenant(ctx, claimed.ID); err != nil {
			return fmt.Sprintf("migrate database %q", t.Database), err
		}
		if n.Superuser != "" {
			u, err := st.CreateSuperuser(ctx, n.Superuser, n.SuperuserEmail, n.SuperuserPassword)
			if err != nil {
				return "create superuser", err
			}
			if n.Invite {
				if invite, inviteExpires, err = st.CreateResetToken(ctx, u.Username, InviteTTL); err != nil {
					return "issue the superuser's set-password link", err
				}
				if err := st.RecordHistory(ctx, store.ResetLinkIssued(InviteActor, u)); err != nil {
					return "record the set-password link in the history", err
				}
			}
		}
		return "", nil
	})
	if err != nil {
		return Created{}, err
	}
	created.Invite, created.InviteExpires = invite, inviteExpires
	return created, nil
}

// randomPassword is a password nobody knows (256 random bits), for an
// invited superuser until the invite is used.
func randomPassword() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// saga is the all-or-nothing part of Create and RestoreArchive: check
// that t's name, hosts and database are free, claim t (state creating),
// fill its database with fill, issue its token, and set it to state
// final. check, when set, runs after the name and hosts were found
// free. A step that fails after the claim undoes everything (an
// *UndoneError whose Failed starts with what).
func (m *Manager) saga(ctx context.Context, t registry.Tenant, final registry.State, what string, check func(context.Context) error,
	fill func(ctx context.Context, db *mongo.Database, st *store.Store, claimed registry.Tenant) (step string, err error)) (Created, error) {
	uri, err := m.URI(ctx)
	if err != nil {
		return Created{}, err
	}
	if err := m.checkFree(ctx, t); err != nil {
		return Created{}, err
	}
	if check != nil {
		if err := check(ctx); err != nil {
			return Created{}, err
		}
	}
	client, err := Connect(ctx, uri)
	if err != nil {
		return Created{}, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(t.Database)
	st := store.New(db, store.Options{})
	if err := checkEmptyDatabase(ctx, st, t.Name); err != nil {
		return Created{}, err
	}
	if h := m.Hooks.BeforeClaim; h != nil {
		h(t)
	}
	claimed, err := m.Registry.CreateTenant(ctx, t)
	if err != nil {
		return Created{}, m.claimError(ctx, t, err)
	}
	// From here on, everything written is ours and is undone on failure.
	fail := func(step string, cause error, dropDB bool) (Created, error) {
		return Created{}, m.undoClaim(ctx, st, claimed, what+": "+step, cause, dropDB)
	}
	// Checked again now that the name is ours: nobody may have written to
	// the database meanwhile.
	if err := checkEmptyDatabase(ctx, st, t.Name); err != nil {
		return fail("database check", err, false)
	}
	if step, err := fill(ctx, db, st, claimed); err != nil {
		return fail(step, err, true)
	}
	token, err := m.issueToken(ctx, claimed.Name)
	if err != nil {
		return fail("issue the tenant's Consul ACL token", err, true)
	}
	if h := m.Hooks.BeforeActivate; h != nil {
		if err := h(claimed); err != nil {
			return fail("test hook", err, true)
		}
	}
	if claimed, err = m.Registry.SetState(ctx, claimed.Name, final); err != nil {
		return fail("activate", err, true)
	}
	return Created{Tenant: claimed, Token: token}, nil
}

// checkFree reports, before anything is written, a taken name or host
// (*NameTakenError, *HostTakenError). CreateTenant decides for real.
func (m *Manager) checkFree(ctx context.Context, t registry.Tenant) error {
	existing, err := m.Registry.Tenant(ctx, t.Name)
	switch {
	case err == nil:
		return &NameTakenError{Name: t.Name, Existing: existing}
	case !errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("look up tenant %q: %w", t.Name, err)
	}
	all, err := m.Registry.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	for _, h := range t.Hosts {
		for _, o := range all {
			if o.HasHost(h) {
				return &HostTakenError{Name: t.Name, Host: h, Owner: o}
			}
		}
	}
	return nil
}

// claimError describes a failed claim; a lost race ends here too.
func (m *Manager) claimError(ctx context.Context, t registry.Tenant, err error) error {
	var ht *registry.HostTakenError
	switch {
	case errors.As(err, &ht):
		owner, rerr := m.Registry.Tenant(ctx, ht.Owner)
		if rerr != nil {
			owner = registry.Tenant{Name: ht.Owner}
		}
		return &HostTakenError{Name: t.Name, Host: ht.Host, Owner: owner, Err: ht}
	case errors.Is(err, registry.ErrExists):
		existing, rerr := m.Registry.Tenant(ctx, t.Name)
		if rerr != nil {
			existing = registry.Tenant{Name: t.Name}
		}
		return &NameTakenError{Name: t.Name, Existing: existing}
	}
	return fmt.Errorf("create tenant %q: %w", t.Name, err)
}

// checkEmptyDatabase refuses a database that already holds anything: data
// of a tenant deleted before tenant IDs existed, or of another deployment.
// A new tenant starts with an empty database, always.
func checkEmptyDatabase(ctx context.Context, st *store.Store, name string) error {
	empty, err := st.Empty(ctx)
	if err != nil {
		return err
	}
	if empty {
		return nil
	}
	stamp, err := st.TenantID(ctx)
	if err != nil {
		return err
	}
	return &DatabaseNotEmptyError{Name: name, Database: st.DatabaseName(), Stamp: stamp}
}

// undoClaim undoes what a create or restore wrote after claiming tenant
// claimed (its database when dropDB, its record, its token).
func (m *Manager) undoClaim(ctx context.Context, st *store.Store, claimed registry.Tenant, failed string, cause error, dropDB bool) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var undoErrs []error
	if dropDB {
		if err := st.Drop(uctx); err != nil {
			undoErrs = append(undoErrs, err)
		}
	}
	if err := m.Registry.PurgeTenant(uctx, claimed.Name, claimed.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
		undoErrs = append(undoErrs, err)
	}
	if err := m.revokeToken(uctx, claimed.Name); err != nil {
		undoErrs = append(undoErrs, err)
	}
	return &UndoneError{Failed: failed, Cause: cause, Tenant: claimed, UndoErr: errors.Join(undoErrs...)}
}

// SetState suspends (registry.StateSuspended) or resumes
// (registry.StateActive) a tenant.
func (m *Manager) SetState(ctx context.Context, name string, state registry.State) (registry.Tenant, error) {
	t, err := m.Registry.SetState(ctx, name, state)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return registry.Tenant{}, &UnknownTenantError{Name: name}
	case errors.Is(err, registry.ErrWrongState):
		op := "resume"
		if state == registry.StateSuspended {
			op = "suspend"
		}
		return registry.Tenant{}, &WrongStateError{Op: op, Tenant: registry.Tenant{Name: name, State: registry.StateDeleted}}
	case err != nil:
		return registry.Tenant{}, fmt.Errorf("set tenant %q %s: %w", name, state, err)
	}
	return t, nil
}

// Delete stops serving t (its hosts answer 404, no app runs) and keeps
// its data for retention, its name and hosts reserved for it; with purge
// it then purges it. A deleted tenant can only be purged; a tenant being
// created cannot be deleted (*WrongStateError).
func (m *Manager) Delete(ctx context.Context, t registry.Tenant, retention time.Duration, purge bool) (registry.Tenant, error) {
	switch t.State {
	case registry.StateDeleted:
		if !purge {
			return t, &WrongStateError{Op: "delete", Tenant: t}
		}
	case registry.StateCreating:
		return t, &WrongStateError{Op: "delete", Tenant: t}
	default:
		// Stop serving first: should purge fail half-way, what is left
		// is a deleted tenant that Purge finishes.
		var err error
		if t, err = m.Registry.MarkDeleted(ctx, t.Name, m.now().Add(retention)); err != nil {
			return t, fmt.Errorf("delete tenant %q: %w", t.Name, err)
		}
	}
	if err := m.revokeToken(ctx, t.Name); err != nil {
		return t, fmt.Errorf("delete tenant %q: it is deleted, but: %w (run `campus tenant delete %s` again)", t.Name, err, t.Name)
	}
	if purge {
		return t, m.Purge(ctx, t)
	}
	return t, nil
}

// Restore serves a deleted tenant again: the same ID, data and hosts; its
// token is issued again (the delete revoked it).
func (m *Manager) Restore(ctx context.Context, name string) (registry.Tenant, TokenResult, error) {
	t, err := m.Registry.RestoreTenant(ctx, name)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return t, TokenNone, &UnknownTenantError{Name: name}
	case errors.Is(err, registry.ErrWrongState):
		cur, _ := m.Registry.Tenant(ctx, name)
		return t, TokenNone, &WrongStateError{Op: "restore", Tenant: cur}
	case err != nil:
		return t, TokenNone, fmt.Errorf("restore tenant %q: %w", name, err)
	}
	token, err := m.issueToken(ctx, t.Name)
	return t, token, err
}

// CanPurge says whether t may be purged: only a deleted tenant, or what an
// interrupted create left.
func CanPurge(t registry.Tenant) error {
	if t.State != registry.StateDeleted && t.State != registry.StateCreating {
		return &WrongStateError{Op: "purge", Tenant: t}
	}
	return nil
}

// Purge drops t's database, then removes t (by ID) from the registry: in
// that order, so that an interruption leaves a tenant to purge again,
// never data without a tenant. A database stamped for another tenant ID
// is not dropped (*ForeignDatabaseError).
func (m *Manager) Purge(ctx context.Context, t registry.Tenant) error {
	if err := CanPurge(t); err != nil {
		return err
	}
	uri, err := m.URI(ctx)
	if err != nil {
		return err
	}
	st, err := OpenStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	stamp, err := st.TenantID(ctx)
	if err != nil {
		return fmt.Errorf("purge tenant %q: %w", t.Name, err)
	}
	if stamp != "" && stamp != t.ID {
		return &ForeignDatabaseError{Op: "purge", Tenant: t, Stamp: stamp}
	}
	// An app of t still running is stopped by its supervisor once it sees
	// the deletion: wait for it (bounded), since any write of it after the
	// drop would make the database again.
	if !waitNoInstances(ctx, m.Registry, t.Name, purgeDrainWait) {
		fmt.Fprintf(m.notes(), "tenant %s: its apps were still registered after %s; purging anyway\n", t.Name, purgeDrainWait)
	}
	if err := st.Drop(ctx); err != nil {
		return fmt.Errorf("purge tenant %q: %w", t.Name, err)
	}
	if m.Hooks.AfterDrop != nil {
		m.Hooks.AfterDrop(t)
	}
	if err := m.Registry.PurgeTenant(ctx, t.Name, t.ID); err != nil {
		return fmt.Errorf("purge tenant %q: database dropped, but: %w", t.Name, err)
	}
	if err := m.dropLateWrites(ctx, st, t); err != nil {
		return fmt.Errorf("purge tenant %q: %w", t.Name, err)
	}
	if err := m.revokeToken(ctx, t.Name); err != nil {
		return fmt.Errorf("purge tenant %q: purged, but: %w", t.Name, err)
	}
	return nil
}

const (
	// purgeDrainWait bounds how long a purge waits for the tenant's apps
	// to leave the registry before it drops the database.
	purgeDrainWait = 30 * time.Second
	// purgeSettle is how long a purge keeps watching the dropped database
	// for late writes.
	purgeSettle = 2 * time.Second
)

// dropLateWrites drops t's database again should it come back within
// purgeSettle: an app that was starting when the tenant was deleted (it
// read the record just before, and is not registered yet) or one whose
// last write lands after its deregistration makes it again with its first
// write, stamped with t's ID or not stamped at all, and a later `tenant
// restore` of t's archive would then be refused. A database stamped with
// another tenant's ID, or unstamped while a tenant of that name exists
// again (a create under way), is never touched.
func (m *Manager) dropLateWrites(ctx context.Context, st *store.Store, t registry.Tenant) error {
	deadline := time.Now().Add(purgeSettle) // real time: the app's, not the lifecycle's clock
	for {
		empty, err := st.Empty(ctx)
		if err != nil {
			return err
		}
		if !empty {
			stamp, err := st.TenantID(ctx)
			if err != nil {
				return err
			}
			ours := stamp == t.ID
			if stamp == "" {
				_, err := m.Registry.Tenant(ctx, t.Name)
				ours = errors.Is(err, registry.ErrNotFound)
			}
			if ours {
				m.logger().Info("purge: the dropped database came back (a late write of its app); dropping it again", "tenant", t.Name, "database", t.Database)
				if err := st.Drop(ctx); err != nil {
					return err
				}
			}
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PurgeExpired purges every deleted tenant whose retention has ended, one
// by one: a failure is reported and the others still go.
func (m *Manager) PurgeExpired(ctx context.Context) (purged []registry.Tenant, err error) {
	all, err := m.Registry.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	now := m.now()
	var errs []error
	for _, t := range all {
		if t.State != registry.StateDeleted || t.PurgeAfter.After(now) {
			continue
		}
		if err := m.Purge(ctx, t); err != nil {
			errs = append(errs, err)
			continue
		}
		purged = append(purged, t)
	}
	if len(errs) > 0 {
		return purged, fmt.Errorf("%d tenants could not be purged: %w", len(errs), errors.Join(errs...))
	}
	return purged, nil
}

// Seed creates the tenants of a new `campus dev`, each through Create: a
// name already taken is skipped; a tenant that cannot be created (its
// database holds old data, say) is reported in the error and the others
// are still created.
func (m *Manager) Seed(ctx context.Context, tenants []NewTenant) (created []registry.Tenant, err error) {
	var errs []error
	for _, n := range tenants {
		c, err := m.Create(ctx, n)
		var taken *NameTakenError
		switch {
		case errors.As(err, &taken):
		case err != nil:
			errs = append(errs, fmt.Errorf("seed tenant %s: %w", n.Name, err))
		default:
			created = append(created, c.Tenant)
		}
	}
	return created, errors.Join(errs...)
}

// Migrator is a FleetMigrator over m's registry and database, with m's
// BeforeMigrate hook; the caller sets the rest and closes the client.
func (m *Manager) Migrator(ctx context.Context) (*FleetMigrator, error) {
	uri, err := m.URI(ctx)
	if err != nil {
		return nil, err
	}
	client, err := Connect(ctx, uri)
	if err != nil {
		return nil, err
	}
	return &FleetMigrator{Client: client, Registry: m.Registry, Warn: m.Notes, Before: m.Hooks.BeforeMigrate}, nil
}
