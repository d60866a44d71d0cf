// Package store is the data access layer of one tenant: students, admin
// users, sessions, login throttling and the schema version, all in one
// MongoDB database chosen when the Store is constructed. No method takes a
// database name; a Store can only ever touch the database it was built on.
//
// Collections: students (int64 _id handed out by claims in id_claims,
// ids.go; with folded keys for search, sorting and case-insensitive
// uniqueness, fold.go), counters (hints), users, groups (permissions.go),
// sessions, login_failures, meta (the schema version) and students_journal (the
// order of student writes, for the read model of readmodel.go, which
// answers student reads from memory on FerretDB, where no index is used).
// Files: store.go (types, Open/New), schema.go, migrate_v2.go, validate.go,
// fold.go, students.go, ids.go, readmodel.go, bound.go (deadlines),
// csvio.go, users.go, logins.go (login throttling), sessions.go.
//
// The store works on MongoDB and on FerretDB's SQLite backend (dev mode,
// tests), so it keeps to what both support: no transactions, collations
// or TTL deletion on FerretDB (expiry is also checked in code). Sorting is
// by the folded keys' byte order (case and accents ignored). Text is
// stored verbatim; escaping is the caller's job. ExportStudents guards
// spreadsheets: cells that begin with '=', '+', '-', '@', tab or CR get a
// leading quote, which ParseStudentsFile takes off again, so that export
// and import round-trip.
package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"
)

// SchemaVersion is the newest schema this binary knows.
//
// Version 2 adds the folded keys of students (migrate_v2.go, fold.go):
// case- and accent-insensitive search and sorting, and registration
// numbers unique regardless of case; and staff roles, history and reset
// tokens (schema_staff.go).
//
// Version 3 is the student record of issue 27 (record.go): class, date of
// birth, guardian, status, enrolment date, notes; the migration gives
// every existing student the status "enrolled" (migrate_v2.go).
//
// Version 4 stores the students' _ids as zero-padded strings, so that
// FerretDB finds one student through its index (studentid.go,
// migrate_v4.go); Student.ID stays an int64.
const SchemaVersion = 4

// Errors callers tell apart with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrDuplicateRegNo = errors.New("a student with this registration number already exists")
	ErrUserExists     = errors.New("a user with this username already exists")
	ErrBadCredentials = errors.New("invalid username or password")
	ErrSchemaTooNew   = errors.New("database schema is newer than this binary knows")
	ErrNotMigrated    = errors.New("database is not migrated; run `campus manage TENANT migrate`")
	ErrResetInvalid   = errors.New("the password reset link is invalid, expired or already used")
	ErrWrongPassword  = errors.New("the current password is not correct")
)

// LockedError is returned by Authenticate while a username (from an
// address), an address (for the usernames that failed from it) or a
// username everywhere is locked out after repeated failures.
// errors.Is(err, ErrBadCredentials) is also true so callers that do not
// care about the difference treat it as a failure. Unknown usernames are
// locked exactly like known ones, so a LockedError says nothing about
// whether a user exists.
type LockedError struct {
	Until time.Time
	Scope LockScope
}

// LockScope says which counter refused a login (see logins.go).
type LockScope string

// The lock scopes.
const (
	LockPair    LockScope = "username from this address"
	LockAddress LockScope = "address, for usernames that failed from it"
	LockUser    LockScope = "username from every address"
)

func (e *LockedError) Error() string {
	return "too many failed login attempts; try again later"
}

func (e *LockedError) Is(target error) bool { return target == ErrBadCredentials }

// FieldErrors maps a form field name (registration_no, first_name,
// second_name, username, email, password) to a human message.
type FieldErrors map[string]string

// Error lists the messages in a stable order.
func (fe FieldErrors) Error() string {
	fields := slices.Sorted(maps.Keys(fe))
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f + ": " + fe[f]
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Store is bound to exactly one database.
type Store struct {
	db *mongo.Database

	client *mongo.Client // set by Open, disconnected by Close; nil for New
	opts   Options       // defaults applied

	historyNames sync.Map     // usernames known to be in history_names (historychain.go)
	chainNext    atomic.Int64 // the batch after the last this Store claimed, 0: unknown (historychain.go)

	dummyOnce sync.Once // dummyHash is computed on first use
	dummyHash []byte

	// For tests of ImportStudents: documents per insertMany, and a hook
	// run before each batch is inserted.
	insertBatch  int
	beforeInsert func(batch int)
	// For tests of operations (operations.go): run at "begin" (the last
	// number read), "commit" (before) and "committed" (after, before the
	// clean-up); and the owner its records name instead of this process.
	opHook    func(point string)
	fakeOwner *opOwner
	// The most changed rows a roll-back reads at once (deleteBatch).
	markBatch int

	// For tests of Authenticate: run right before a password is checked.
	beforeCheck func()

	// For tests of the read model: run at the start of each full load,
	// and before journal entries read are applied.
	beforeLoad  func()
	beforeApply func()

	// For tests of the schema 2 migration (migrate_v2.go): run before each
	// batch copied and before the swap; an error stops the migration there.
	beforeCopyBatch func(batch int) error
	beforeSwap      func() error
	cutMigration    func(at string) error // migrationCut
	copyBatch       int                   // documents per copied batch; 0 means copyBatch

	// For tests of the saved read model (modelsnap.go) and the journal:
	// told why the saved model was not used (nil: it was); run before
	// asking the server's kind and before each journal append (an error
	// fails them).
	afterLoadSaved func(error)
	beforeKind     func() error
	beforeAppend   func() error

	// The operations this Store is writing (operations.go), by number:
	// how many of its writers try or run each.
	opsMu   sync.Mutex
	running map[int64]int
	// Pending operations of other live writers at the last
	// RecoverOperations, and when that was (busy.go).
	elsewhere, elsewhereAt atomic.Int64

	// The read model of students (readmodel.go) and whether the server
	// is FerretDB (asked once).
	rm          *readModel
	storage     storageStats // writes refused for lack of space (storage.go)
	ferretMu    sync.Mutex
	ferretKnown bool
	isFerret    bool

	// Background work (model loads, catch-ups, saves, journal retries):
	// life ends at Close, which waits for it.
	life    context.Context
	stop    context.CancelFunc
	bgMu    sync.Mutex
	closed  bool
	closing chan struct{} // closed when Close starts (journal retries on a full disk give up then)
	bg      sync.WaitGroup
	retries sync.WaitGroup // the journal entries still to append: Close gives them until its ctx ends
	imports sync.WaitGroup // imports running in the background (importrun.go): Close gives them ImportDrain
}

// errStoreClosed answers reads that need background work after Close.
var errStoreClosed = errors.New("the store is closed")

// background runs f in a goroutine that Close cancels and waits for; it
// reports false (and runs nothing) once the Store is closed.
func (s *Store) background(f func(ctx context.Context)) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed {
		return false
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.life)
	}()
	return true
}

// Student is one record of the tenant's register.
type Student struct {
	ID             int64  `bson:"_id" json:"id"`
	RegistrationNo string `bson:"registration_no" json:"registration_no"`
	FirstName      string `bson:"first_name" json:"first_name"`
	SecondName     string `bson:"second_name" json:"second_name"`
	// Schema 3 (record.go): all optional but Status; dates are ISO text
	// (DateLayout) or "".
	Class         string    `bson:"class,omitempty" json:"class,omitempty"`
	DateOfBirth   string    `bson:"date_of_birth,omitempty" json:"date_of_birth,omitempty"`
	Gender        string    `bson:"gender,omitempty" json:"gender,omitempty"`
	GuardianName  string    `bson:"guardian_name,omitempty" json:"guardian_name,omitempty"`
	GuardianPhone string    `bson:"guardian_phone,omitempty" json:"guardian_phone,omitempty"`
	GuardianEmail string    `bson:"guardian_email,omitempty" json:"guardian_email,omitempty"`
	Status        string    `bson:"status,omitempty" json:"status,omitempty"` // one of Statuses
	StatusDate    string    `bson:"status_date,omitempty" json:"status_date,omitempty"`
	EnrolledOn    string    `bson:"enrolled_on,omitempty" json:"enrolled_on,omitempty"`
	Notes         string    `bson:"notes,omitempty" json:"notes,omitempty"`
	CreatedAt     time.Time `bson:"created_at" json:"created_at"`
	UpdatedAt     time.Time `bson:"updated_at" json:"updated_at"`
}

// StudentInput is what a form or a CSV row provides.
type StudentInput struct {
	RegistrationNo string
	FirstName      string
	SecondName     string
	// Schema 3 (record.go); Status "" means enrolled.
	Class, DateOfBirth, Gender                 string
	GuardianName, GuardianPhone, GuardianEmail string
	Status, StatusDate, EnrolledOn, Notes      string
}

// ListOptions select a page of students. Query matches case-insensitively
// anywhere in the names, the registration number, the class, the
// guardian's name, phone (its digits) and e-mail, or the notes; Class,
// Status and EnrolledYear narrow the list further. Sort is a field name
// (registration_no, first_name, second_name, id), optionally prefixed with
// "-" for descending; the default is registration_no.
type ListOptions struct {
	Query   string
	Sort    string
	Page    int // 1-based; values < 1 mean 1
	PerPage int // default 50, at most MaxPerPage
	// Filters ("" or 0: any). Class is compared exactly (as StudentFacets
	// lists the classes); Status is one of Statuses.
	Class        string
	Status       string
	EnrolledYear int
	// NamesOnly: Query matches the registration number and names only
	// (the public register: a visitor must not find a student by a
	// guardian's phone or the notes).
	NamesOnly bool
}

// Filtered reports whether o narrows the list by a filter.
func (o ListOptions) Filtered() bool { return o.Class != "" || o.Status != "" || o.EnrolledYear != 0 }

// Facet is one value of a field with the number of students holding it.
type Facet struct {
	Value string // "" for students without one
	Count int64
}

// Facets are the values the list can be filtered by, with their counts
// (under the list's search and other filters): classes and enrolment
// years ascending, each the school holds, statuses in the order of
// Statuses, every one; a value none of the counted students holds counts
// 0 (facetzeros.go).
type Facets struct {
	Classes       []Facet
	Statuses      []Facet
	EnrolledYears []Facet // Value is the year ("2024"), "" for no enrolment date
}

// Page is one page of a list.
type Page struct {
	Students []Student
	Total    int64
	Page     int
	PerPage  int
	Pages    int
}

// User is a member of this tenant's staff. A superuser may do everything
// and alone manages users, groups and settings; anyone else may do on
// students what their groups allow (permissions.go). An inactive user
// cannot log in and has no sessions (see users.go).
type User struct {
	ID           string    `bson:"_id"`
	Username     string    `bson:"username"`
	Email        string    `bson:"email"`
	PasswordHash string    `bson:"password_hash"`
	IsSuperuser  bool      `bson:"is_superuser"`
	IsActive     bool      `bson:"is_active"`
	CreatedAt    time.Time `bson:"created_at"`
	LastLogin    time.Time `bson:"last_login,omitempty"`
	// Groups are the IDs of the user's groups (permissions.go): nil only
	// for users from before groups, so never written as nil (that would
	// be BSON null, read back as nil).
	Groups []string `bson:"groups"`
}

// Role is "superuser" or "staff", for people.
func (u User) Role() string {
	if u.IsSuperuser {
		return "superuser"
	}
	return "staff"
}

// Session is a logged-in admin session. The token given to the browser is
// never stored; the database keeps its SHA-256. IsSuperuser is read from
// the user at every look-up, never from the session document, so a change
// of role applies to sessions already open.
type Session struct {
	UserID      string
	Username    string
	IsSuperuser bool
	Perms       Perms // what the user may do, read with IsSuperuser
	CSRFToken   string
	ExpiresAt   time.Time
}

// RowError is one bad CSV row.
type RowError struct {
	Line int    // 1-based line number in the file (header is line 1)
	Msg  string // e.g. "registration_no: must be 1-64 letters, digits, '-', '/' or '.'"
	// Exists: the row's registration number is a student already there
	// (an import that adds only); the caller says how to update instead
	// (the web form's checkbox, the CLI's --update).
	Exists bool
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Options tune a Store; zero values mean defaults.
type Options struct {
	BcryptCost    int           // default bcrypt.DefaultCost (tests use bcrypt.MinCost)
	SessionTTL    time.Duration // default 8h
	MaxFailures   int           // failures of one username from one address before lock-out, default 5
	LockoutPeriod time.Duration // how long such a lock-out lasts, default 5m
	// Failures per FailureWindow from one address (any usernames) and for
	// one username (any addresses); defaults 30 and 300 per hour. Keep the
	// address limit well below the username limit (see logins.go).
	MaxAddressFailures int
	MaxUserFailures    int
	FailureWindow      time.Duration
	Now                func() time.Time

	// Deadlines of database work (bound.go): QueryTimeout for one
	// request's reads and writes (default 10s), BulkTimeout for imports,
	// exports, migrations and loading the read model (default 10m). A caller's earlier deadline
	// wins.
	QueryTimeout time.Duration
	BulkTimeout  time.Duration
	// ReadModel chooses where student reads go (readmodel.go): by
	// default to memory on FerretDB and to the indexes on MongoDB.
	ReadModel ReadModelMode
}

// Collection names.
const (
	colStudents      = "students"
	colCounters      = "counters"
	colUsers         = "users"
	colSessions      = "sessions"
	colLoginFailures = "login_failures"
	colMeta          = "meta"
	// Added with staff roles (schema_staff.go): the audit trail of
	// students, and one-time password reset tokens (SHA-256 only). Backups
	// keep history; sessions, login_failures and password_resets are
	// short-lived secrets and need not be backed up.
	colHistory        = "history"
	colPasswordResets = "password_resets"
	// The school's own groups of permissions (permissions.go).
	colGroups = "groups"
)

// databaseNameRe and at most 63 characters is what MongoDB and FerretDB
// both accept; registry database names (DNS labels) fit it. The length is
// checked apart: a counted repetition compiles into as many states at
// every process start.
var databaseNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (o Options) withDefaults() Options {
	switch {
	case o.BcryptCost == 0:
		o.BcryptCost = bcrypt.DefaultCost
	case o.BcryptCost < bcrypt.MinCost:
		o.BcryptCost = bcrypt.MinCost
	case o.BcryptCost > bcrypt.MaxCost:
		o.BcryptCost = bcrypt.MaxCost
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = defaultMaxFailures
	}
	if o.LockoutPeriod <= 0 {
		o.LockoutPeriod = defaultLockoutPeriod
	}
	if o.MaxAddressFailures <= 0 {
		o.MaxAddressFailures = defaultMaxAddressFailures
	}
	if o.MaxUserFailures <= 0 {
		o.MaxUserFailures = defaultMaxUserFailures
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = defaultFailureWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = defaultQueryTimeout
	}
	if o.BulkTimeout <= 0 {
		o.BulkTimeout = defaultBulkTimeout
	}
	return o
}

// Open connects to uri and returns a Store bound to database; Close
// disconnects the client it created. Errors never contain the URI, which
// may hold a password.
func Open(ctx context.Context, uri, database string, opts Options) (*Store, error) {
	if err := checkDatabaseName(database); err != nil {
		return nil, err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		// Parse errors can quote the URI; do not pass them on.
		return nil, fmt.Errorf("open database %s: invalid MongoDB URI", database)
	}
	s := New(client.Database(database), opts)
	s.client = client
	if err := s.Ping(ctx); err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open database %s: %w", database, err)
	}
	return s, nil
}

func checkDatabaseName(name string) error {
	switch {
	case len(name) > 63 || !databaseNameRe.MatchString(name):
		return fmt.Errorf("database name %q: must be 1-63 letters, digits, '_' or '-'", name)
	case name == "admin" || name == "local" || name == "config":
		return fmt.Errorf("database name %q is reserved by MongoDB", name)
	}
	return nil
}

// New returns a Store over an existing database handle (tests); Close does
// not disconnect the caller's client.
func New(db *mongo.Database, opts Options) *Store {
	life, stop := context.WithCancel(context.Background())
	return &Store{db: db, opts: opts.withDefaults(), insertBatch: defaultInsertBatch, markBatch: deleteBatch, rm: newReadModel(), running: map[int64]int{},
		life: life, stop: stop, closing: make(chan struct{})}
}

// Close ends the Store's background work and disconnects the client Open
// created (not the caller's, for New). A journal entry still to append
// is given until ctx ends; loads and catch-ups are cancelled at once. A
// read model that has applied many journal entries since it was saved is
// saved first (within ctx), so that the next process starts from it.
func (s *Store) Close(ctx context.Context) error {
	s.bgMu.Lock()
	if !s.closed {
		close(s.closing)
	}
	s.closed = true
	s.bgMu.Unlock()
	s.drainImports(ctx)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s.saveIfBehind(sctx)
	cancel()
	appended := make(chan struct{})
	go func() {
		s.retries.Wait()
		close(appended)
	}()
	select {
	case <-appended:
	case <-ctx.Done():
	}
	s.stop()
	s.bg.Wait()
	noteModel(s.rm, 0) // its model no longer counts for the collector (modelgc.go)
	if s.client == nil {
		return nil
	}
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("close database %s: %w", s.db.Name(), err)
	}
	return nil
}

// Ping checks that the server answers for this database: it reads the
// schema document of the database's own meta collection (none yet is an
// answer too; nothing is created). Not the server's ping command: FerretDB
// v1 answers that by listing every collection of every database, which
// costs the embedded server O(schools) at each app start and each
// readiness check of every running app (docs/BENCHMARKS.md, "Where a
// start's CPU goes").
func (s *Store) Ping(ctx context.Context) error {
	err := s.col(colMeta).FindOne(ctx, d("_id", schemaDocID), options.FindOne().SetProjection(d("_id", 1))).Err()
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("ping MongoDB: %w", err)
	}
	return nil
}

// DatabaseName is the database this Store is bound to.
func (s *Store) DatabaseName() string { return s.db.Name() }

func (s *Store) col(name string) *mongo.Collection { return s.db.Collection(name) }

// now returns the current time as MongoDB will store it (UTC, milliseconds),
// so values returned to callers equal what a later read gives back.
func (s *Store) now() time.Time { return s.opts.Now().UTC().Truncate(time.Millisecond) }

// d is shorthand for a one-element bson.D.
func d(key string, value any) bson.D { return bson.D{{Key: key, Value: value}} }

// Drop deletes the whole database of this Store: every student, user and
// session of the tenant. Used by `campus tenant delete --purge-data`.
func (s *Store) Drop(ctx context.Context) error {
	if err := s.db.Drop(ctx); err != nil {
		return fmt.Errorf("drop database %s: %w", s.db.Name(), err)
	}
	return nil
}
