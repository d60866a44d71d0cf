package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Operator tokens and the audit trail (issue 26): who may use the control
// API and console, and what they did. Both live beside the tenants in every
// backend but outside Snapshot: writing them never moves the version, so
// proxies and supervisors never rebuild for them.
//
// A token is "campus-op-<id>.<secret>": id (16 hex digits) names the
// record, the whole token is kept only as its SHA-256. The secret is 32
// random bytes, so the hash cannot be reversed by guessing; whoever can
// read the registry (a proxy's Consul token reads campus/) learns no token.

// OperatorTokenPrefix starts every operator token, so that one pasted in
// the wrong place (a log, a ticket) is recognised.
const OperatorTokenPrefix = "campus-op-"

// OperatorToken is the stored record of an operator token.
type OperatorToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	ReadOnly  bool      `json:"read_only"`
	Hash      string    `json:"hash"` // hex SHA-256 of the whole token
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the token was revoked.
func (o OperatorToken) Revoked() bool { return !o.RevokedAt.IsZero() }

// Matches reports, in constant time, whether token is this record's token.
func (o OperatorToken) Matches(token string) bool {
	sum := sha256.Sum256([]byte(token))
	want, err := hex.DecodeString(o.Hash)
	return err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
}

// NewOperatorToken mints a token for name: the token itself, to be shown
// once, and the record to store (CreatedAt left for the backend).
func NewOperatorToken(name string, readOnly bool) (string, OperatorToken, error) {
	if err := ValidateOperatorName(name); err != nil {
		return "", OperatorToken{}, err
	}
	var id [8]byte
	var secret [32]byte
	rand.Read(id[:])
	rand.Read(secret[:])
	o := OperatorToken{ID: hex.EncodeToString(id[:]), Name: name, ReadOnly: readOnly}
	token := OperatorTokenPrefix + o.ID + "." + base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(token))
	o.Hash = hex.EncodeToString(sum[:])
	return token, o, nil
}

// OperatorTokenID returns the record ID a token names, or false when s
// does not have the form of an operator token.
func OperatorTokenID(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, OperatorTokenPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok || len(id) != 16 || len(secret) != 43 {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", false
	}
	return id, true
}

// ValidateOperatorName checks an operator token's name: what the audit
// trail shows as "who" (a person or a system, e.g. "alice" or "signup-form").
func ValidateOperatorName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("name", "%q must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'", name)
	}
	return nil
}

// Validate checks a record as stored.
func (o OperatorToken) Validate() error {
	if err := ValidateOperatorName(o.Name); err != nil {
		return err
	}
	if _, err := hex.DecodeString(o.ID); err != nil || len(o.ID) != 16 {
		return invalid("id", "%q must be 16 hex digits", o.ID)
	}
	if b, err := hex.DecodeString(o.Hash); err != nil || len(b) != sha256.Size {
		return invalid("hash", "must be a hex SHA-256")
	}
	return nil
}

// Audit outcomes.
const (
	OutcomeOK      = "ok"      // the call did what it was asked
	OutcomeRefused = "refused" // refused before anything changed (rights, bad input, state)
	OutcomeFailed  = "failed"  // it failed on the way (what it wrote was undone or is reported)
)

// AuditEntry is one call of the control API or console: who (the
// operator token's ID and name), what (Action, Target), when and the
// outcome. ID orders entries by time (AuditID).
type AuditEntry struct {
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	TokenID  string    `json:"token_id"`
	Operator string    `json:"operator"`
	Action   string    `json:"action"`           // e.g. "schools.create"
	Target   string    `json:"target,omitempty"` // the school's name, when there is one
	Outcome  string    `json:"outcome"`
	Status   int       `json:"status"`           // the HTTP status answered
	Detail   string    `json:"detail,omitempty"` // the error, for refused and failed calls
	// IdempotencyKey is the Idempotency-Key of a create, and SchoolID the
	// ID of the school it created: a retry that the control server no
	// longer remembers (it restarted) finds the first create here.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	SchoolID       string `json:"school_id,omitempty"`
}

// AuditID returns a new entry ID for time at: the Unix nanoseconds in 20
// digits and 8 random hex digits, so that IDs sort by time as strings.
func AuditID(at time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%020d-%s", at.UnixNano(), hex.EncodeToString(b[:]))
}

// AuditQuery selects audit entries: newest first, at most Limit (default
// and most 1000), older than the entry ID Before when set, of Target when
// set.
type AuditQuery struct {
	Target string
	Before string
	Limit  int
	// TokenID and IdempotencyKey, when set, select the entries of that
	// token with that key.
	TokenID, IdempotencyKey string
}

// MaxAuditLimit bounds one page of audit entries.
const MaxAuditLimit = 1000

// PageLimit is q's limit with its default and bound applied.
func (q AuditQuery) PageLimit() int {
	if q.Limit <= 0 || q.Limit > MaxAuditLimit {
		return MaxAuditLimit
	}
	return q.Limit
}

// Matches reports whether e is selected by q (apart from the limit).
func (q AuditQuery) Matches(e AuditEntry) bool {
	return (q.Target == "" || e.Target == q.Target) && (q.Before == "" || e.ID < q.Before) &&
		(q.TokenID == "" || e.TokenID == q.TokenID) && (q.IdempotencyKey == "" || e.IdempotencyKey == q.IdempotencyKey)
}

// Operators is implemented by every backend beside Registry.
type Operators interface {
	// CreateOperatorToken stores a new token record (see
	// NewOperatorToken); CreatedAt is set when zero. A name is taken while
	// a token of that name is not revoked: ErrExists. ErrInvalid.
	CreateOperatorToken(ctx context.Context, o OperatorToken) (OperatorToken, error)
	// OperatorToken returns the record of ID id, revoked or not, or an
	// error wrapping ErrNotFound.
	OperatorToken(ctx context.Context, id string) (OperatorToken, error)
	// OperatorTokens returns every record, revoked ones too, sorted by
	// name then creation.
	OperatorTokens(ctx context.Context) ([]OperatorToken, error)
	// RevokeOperatorToken revokes the live token named name (or of ID
	// name) and returns it. ErrNotFound when there is none.
	RevokeOperatorToken(ctx context.Context, name string) (OperatorToken, error)
	// TouchOperatorToken records that token id was used at at.
	TouchOperatorToken(ctx context.Context, id string, at time.Time) error
	// AppendAudit stores an entry (ID from AuditID and At set when zero)
	// and returns it.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit returns the entries q selects, newest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// PruneAudit deletes the entries recorded before before (their IDs
	// sort by time: AuditCut) and returns how many it deleted.
	PruneAudit(ctx context.Context, before time.Time) (int, error)
}

// AuditCut is the smallest entry ID of a time: entries whose ID sorts
// below it were recorded before t.
func AuditCut(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// PrepareAudit fills an entry's ID and time, for backends.
func PrepareAudit(e AuditEntry) (AuditEntry, error) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if e.ID == "" {
		e.ID = AuditID(e.At)
	}
	if e.Action == "" || e.Outcome == "" {
		return e, invalid("audit", "an entry needs an action and an outcome")
	}
	return e, nil
}
