package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Login throttling.
//
// Every login attempt must first reserve one slot in each of three
// counters, before the password is checked at all:
//
//   - pair (username, address): Options.MaxFailures (default 5). When that
//     many attempts have failed, the pair is locked for LockoutPeriod
//     (default 5 minutes). Failures are remembered for failureMemory (24h).
//     A success resets the pair.
//   - address, across usernames: Options.MaxAddressFailures (default 30)
//     per FailureWindow (default 1 hour). When full, the address is locked
//     only for the usernames that have failed from it (a failure of the
//     pair counter still remembered), and for strings that cannot be
//     usernames: a username with no failure from the address still gets
//     in, with a slot of its pair and username counters. A school's staff
//     share one NAT address with its pupils, so an address lock that
//     stopped every username would let one pupil lock every teacher out
//     with failures for names that do not even exist (issue 25). Password
//     spraying from one address still stops there: after the address is
//     full, each username gets one more guess from it, and that one
//     failure locks it there.
//   - username, across addresses: Options.MaxUserFailures (default 300)
//     per FailureWindow, against guessing from many addresses.
//
// This is django-axes's AXES_LOCKOUT_PARAMETERS = [["username",
// "ip_address"], "ip_address", "username"] with the address lock narrowed
// to the usernames that failed there. Unknown usernames are counted
// exactly like known ones (nothing tells them apart), and every lock
// applies to a username only through that username's own failures or the
// username counter, so failures for usernames that do not exist never
// lock out a real user. One attacker at one address cannot lock the real
// admin out elsewhere: at most MaxAddressFailures of the admin's
// MaxUserFailures can come from one address in a window, and the pair
// counter of the admin's own address is untouched. Locking an admin out
// everywhere takes MaxUserFailures/MaxAddressFailures (10) addresses (for
// IPv6: /64 networks) failing for an hour. Unlock (`campus manage T
// unlock USER`, or a superuser on the user's page) forgets the user's
// failures everywhere, which lifts every lock that stops the user.
//
// A slot is a document with the _id "<counter key>#<i>", i in [0, limit).
// Reserving a slot is one insert, and the unique _id makes it atomic on
// MongoDB and on FerretDB alike: whatever the interleaving, at most
// `limit` attempts hold a slot of one counter at a time, so a burst of
// parallel attempts cannot check more passwords than the limit. (A single
// findAndModify with $inc is not enough: FerretDB v1 on SQLite runs it as
// a read followed by a whole-document write, and parallel increments are
// lost.) A slot is held from before the password check: an attempt in
// flight counts as a failure until it succeeds; a success gives its slots
// back (and resets its pair). Slots expire (expires_at) and are swept
// before every attempt; a lock-out sets the expiry of all slots of the
// counter to the end of the lock. (One residual race, on FerretDB only: its
// deleteMany is a query followed by deletes by _id, so a sweep or reset
// that read a slot just before another deleter removed it and a new attempt
// re-reserved the same _id would delete the new slot, allowing one extra
// attempt. MongoDB re-checks the filter for every document it deletes.)
//
// Keys: "p|<username>|<address>", "a|<address>", "u|<username>". Neither
// usernames nor address keys contain '|' or '#', so a key prefix names
// exactly one counter (or, for "p|<username>|", the pairs of one user).
const (
	defaultMaxFailures        = 5
	defaultLockoutPeriod      = 5 * time.Minute
	defaultMaxAddressFailures = 30
	defaultMaxUserFailures    = 300
	defaultFailureWindow      = time.Hour
)

// failureMemory is how long a failed login of a (username, address) pair
// is remembered when it does not lead to a lock-out.
const failureMemory = 24 * time.Hour

// slotDoc is one reserved login attempt.
type slotDoc struct {
	ID        string    `bson:"_id"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// counter is one throttle: at most limit slots live at a time, each
// living window; a failure that fills it locks it for lockFor. A full
// counter that is narrow (the address counter) refuses only attempts whose
// pair counter holds a failure.
type counter struct {
	key     string
	scope   LockScope
	limit   int
	window  time.Duration
	lockFor time.Duration
	narrow  bool
}

// idRange selects the slots whose _id begins with prefix ('$' follows
// '#' and '}' follows '|', so [prefix, prefix with its last byte + 1) is
// exactly the strings that begin with prefix).
func idRange(prefix string) bson.D {
	end := prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
	return d("_id", bson.D{{Key: "$gte", Value: prefix}, {Key: "$lt", Value: end}})
}

func (c counter) slots() bson.D { return idRange(c.key + "#") }

// AddressKey is the part of a client address that login failures are
// counted by: an IPv4 address, or the /64 network of an IPv6 address (one
// subscriber usually holds a whole /64). Anything that is not an IP
// address counts as one shared "unknown" address.
func AddressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return "unknown"
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// loginCounters returns the counters of one attempt, the pair first. A
// string that cannot be a username is only counted by address: no account
// can be locked through it.
func (s *Store) loginCounters(userKey string, tracked bool, addr string) []counter {
	o := s.opts
	cs := []counter{}
	if tracked {
		cs = append(cs, counter{key: "p|" + userKey + "|" + addr, scope: LockPair, limit: o.MaxFailures, window: failureMemory, lockFor: o.LockoutPeriod})
	}
	cs = append(cs, counter{key: "a|" + addr, scope: LockAddress, limit: o.MaxAddressFailures, window: o.FailureWindow, lockFor: o.FailureWindow, narrow: tracked})
	if tracked {
		cs = append(cs, counter{key: "u|" + userKey, scope: LockUser, limit: o.MaxUserFailures, window: o.FailureWindow, lockFor: o.FailureWindow})
	}
	return cs
}

// sweepSlots deletes expired slots (MongoDB's TTL index does this lazily,
// FerretDB not at all).
func (s *Store) sweepSlots(ctx context.Context, now time.Time) error {
	if _, err := s.col(colLoginFailures).DeleteMany(ctx, d("expires_at", d("$lte", now))); err != nil {
		return fmt.Errorf("expire login failures: %w", s.full(err))
	}
	return nil
}

// reserve takes one slot of c and returns its _id, or "" when c is full.
func (s *Store) reserve(ctx context.Context, c counter, now time.Time) (string, error) {
	col := s.col(colLoginFailures)
	// The count is only a hint where to start: the insert decides.
	n, err := col.CountDocuments(ctx, c.slots())
	if err != nil {
		return "", fmt.Errorf("count login attempts: %w", err)
	}
	if n >= int64(c.limit) {
		return "", nil
	}
	for j := range c.limit {
		id := c.key + "#" + strconv.Itoa((int(n)+j)%c.limit)
		_, err := col.InsertOne(ctx, slotDoc{ID: id, ExpiresAt: now.Add(c.window)})
		if err == nil {
			return id, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return "", fmt.Errorf("reserve login attempt: %w", s.full(err))
		}
	}
	return "", nil
}

// lockedUntil is when the first slot of a full counter frees up.
func (s *Store) lockedUntil(ctx context.Context, c counter, now time.Time) time.Time {
	var doc slotDoc
	err := s.col(colLoginFailures).FindOne(ctx, c.slots(),
		options.FindOne().SetSort(d("expires_at", 1))).Decode(&doc)
	if err != nil || !doc.ExpiresAt.After(now) {
		return now.Add(c.lockFor) // all slots just released: a guess
	}
	return doc.ExpiresAt
}

// reserveAll takes a slot of every counter, or none: when one is full, the
// slots already taken are given back and a *LockedError returned. A full
// narrow counter is passed without a slot when the pair (cs[0], taken
// first) holds no slot but this attempt's: the username has no failure
// from this address.
func (s *Store) reserveAll(ctx context.Context, cs []counter, now time.Time) ([]string, error) {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		id, err := s.reserve(ctx, c, now)
		if err == nil && id == "" && c.narrow && len(ids) > 0 {
			var n int64
			n, err = s.col(colLoginFailures).CountDocuments(ctx, cs[0].slots())
			if err == nil && n <= 1 {
				continue
			}
		}
		if err == nil && id == "" {
			err = &LockedError{Until: s.lockedUntil(ctx, c, now), Scope: c.scope}
		}
		if err != nil {
			if rerr := s.release(ctx, ids); rerr != nil {
				return nil, errors.Join(err, rerr)
			}
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// release gives slots back.
func (s *Store) release(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.col(colLoginFailures).DeleteMany(ctx, d("_id", d("$in", ids))); err != nil {
		return fmt.Errorf("release login attempts: %w", s.full(err))
	}
	return nil
}

// failed keeps the slots of a failed attempt as failures and locks every
// counter that is now full. It returns the *LockedError of the first
// counter it locked, or nil.
func (s *Store) failed(ctx context.Context, cs []counter, now time.Time) error {
	col := s.col(colLoginFailures)
	var locked error
	for _, c := range cs {
		n, err := col.CountDocuments(ctx, c.slots())
		if err != nil {
			return fmt.Errorf("count login failures: %w", err)
		}
		if n < int64(c.limit) {
			continue
		}
		until := now.Add(c.lockFor)
		if _, err := col.UpdateMany(ctx, c.slots(), d("$set", d("expires_at", until))); err != nil {
			return fmt.Errorf("lock out: %w", s.full(err))
		}
		if locked == nil {
			locked = &LockedError{Until: until, Scope: c.scope}
		}
	}
	return locked
}

// LoginLocks is what stands between a user and a login: the failed logins
// remembered for the username, per address and in all, and which of them
// lock it out. Unlock returns what it lifted in the same form.
type LoginLocks struct {
	Username  string
	Addresses []AddressFailures // sorted by address
	// Failures of the username from any address in the current window,
	// and whether they lock it out everywhere (until UserUntil).
	UserFailures int
	UserUntil    time.Time
}

// AddressFailures are a user's failed logins from one address (an IPv4
// address or an IPv6 /64, see AddressKey).
type AddressFailures struct {
	Address  string
	Failures int
	// PairUntil: the username is locked out from this address (its own
	// failures there) until then; zero when not.
	PairUntil time.Time
	// AddressUntil: the address is locked, until then, for the usernames
	// that failed from it, this one included; zero when not.
	AddressUntil time.Time
}

// Locked reports whether any lock stops the user now.
func (l LoginLocks) Locked() bool {
	if !l.UserUntil.IsZero() {
		return true
	}
	for _, a := range l.Addresses {
		if !a.PairUntil.IsZero() || !a.AddressUntil.IsZero() {
			return true
		}
	}
	return false
}

// LoginLocks reads a user's failed logins and lock-outs; ErrNotFound for
// an unknown user.
func (s *Store) LoginLocks(ctx context.Context, username string) (LoginLocks, error) {
	u, err := s.userByKey(ctx, usernameKey(username))
	if err != nil {
		return LoginLocks{}, fmt.Errorf("login locks: %w", err)
	}
	l, err := s.loginLocks(ctx, u.Username, s.now())
	if err != nil {
		return LoginLocks{}, fmt.Errorf("login locks of %q: %w", u.Username, err)
	}
	return l, nil
}

func (s *Store) loginLocks(ctx context.Context, username string, now time.Time) (LoginLocks, error) {
	key := usernameKey(username)
	l := LoginLocks{Username: username}
	col := s.col(colLoginFailures)
	live := func(prefix string) ([]slotDoc, error) {
		filter := append(idRange(prefix), bson.E{Key: "expires_at", Value: d("$gt", now)})
		cur, err := col.Find(ctx, filter, options.Find().SetSort(d("_id", 1)))
		if err != nil {
			return nil, err
		}
		var docs []slotDoc
		return docs, cur.All(ctx, &docs)
	}
	pairs, err := live("p|" + key + "|")
	if err != nil {
		return l, err
	}
	byAddr := map[string][]slotDoc{}
	var addrs []string
	for _, doc := range pairs {
		addr := strings.TrimPrefix(doc.ID, "p|"+key+"|")
		addr = addr[:strings.LastIndexByte(addr, '#')]
		if byAddr[addr] == nil {
			addrs = append(addrs, addr)
		}
		byAddr[addr] = append(byAddr[addr], doc)
	}
	slices.Sort(addrs)
	o := s.opts
	for _, addr := range addrs {
		a := AddressFailures{Address: addr, Failures: len(byAddr[addr])}
		if a.Failures >= o.MaxFailures {
			a.PairUntil = earliest(byAddr[addr])
		}
		as, err := live("a|" + addr + "#")
		if err != nil {
			return l, err
		}
		if len(as) >= o.MaxAddressFailures {
			a.AddressUntil = earliest(as)
		}
		l.Addresses = append(l.Addresses, a)
	}
	us, err := live("u|" + key + "#")
	if err != nil {
		return l, err
	}
	l.UserFailures = len(us)
	if len(us) >= o.MaxUserFailures {
		l.UserUntil = earliest(us)
	}
	return l, nil
}

// earliest is when the first of a full counter's slots frees up.
func earliest(docs []slotDoc) time.Time {
	t := docs[0].ExpiresAt
	for _, doc := range docs[1:] {
		if doc.ExpiresAt.Before(t) {
			t = doc.ExpiresAt
		}
	}
	return t
}

// clearFailures deletes the lock-out counters of one username: its pairs
// with every address and its own counter. Address counters stay: they
// stop a username only through its own pair failures, which are gone.
func (s *Store) clearFailures(ctx context.Context, userKey string) (int64, error) {
	col := s.col(colLoginFailures)
	var n int64
	for _, prefix := range []string{"p|" + userKey + "|", "u|" + userKey + "#"} {
		res, err := col.DeleteMany(ctx, idRange(prefix))
		if err != nil {
			return n, fmt.Errorf("clear login failures of %q: %w", userKey, s.full(err))
		}
		n += res.DeletedCount
	}
	// Documents of the old format (one per username) that are still there.
	res, err := col.DeleteOne(ctx, d("_id", userKey))
	if err != nil {
		return n, fmt.Errorf("clear login failures of %q: %w", userKey, s.full(err))
	}
	return n + res.DeletedCount, nil
}

// Unlock lifts every lock-out that stops a user, from every address:
// it forgets the user's failed logins (per address and in all), so
// neither a pair lock, nor an address lock (which stops only usernames
// that failed from the address), nor the username lock applies to the
// user any more. It returns what it found and lifted; ErrNotFound for an
// unknown user. The addresses' own counters stay, for the other
// usernames that failed there.
func (s *Store) Unlock(ctx context.Context, username string) (LoginLocks, error) {
	u, err := s.userByKey(ctx, usernameKey(username))
	if err != nil {
		return LoginLocks{}, fmt.Errorf("unlock: %w", err)
	}
	l, err := s.loginLocks(ctx, u.Username, s.now())
	if err != nil {
		return LoginLocks{}, fmt.Errorf("unlock %q: read locks: %w", u.Username, err)
	}
	if _, err := s.clearFailures(ctx, usernameKey(u.Username)); err != nil {
		return LoginLocks{}, fmt.Errorf("unlock: %w", err)
	}
	return l, nil
}
