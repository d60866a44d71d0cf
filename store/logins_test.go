package store

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst of parallel wrong passwords for one user from one address checks
// no more passwords than the limit, and leaves the account locked for that
// address even against the right password, until an unlock.
func TestLockoutBurst(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const limit, burst = 5, 40
	s := newStore(t, Options{MaxFailures: limit, LockoutPeriod: time.Hour})
	var checked atomic.Int32
	s.beforeCheck = func() { checked.Add(1) }
	if _, err := s.CreateSuperuser(ctx, "admin", "", goodPassword); err != nil {
		t.Fatal(err)
	}

	start := make(chan struct{})
	errs := make([]error, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Authenticate(ctx, "admin", "wrong password 1", testAddr)
		})
	}
	close(start)
	wg.Wait()

	var bad, locked int
	for _, err := range errs {
		var le *LockedError
		switch {
		case err == ErrBadCredentials:
			bad++
		case errors.As(err, &le):
			locked++
		default:
			t.Errorf("attempt: %v", err)
		}
	}
	t.Logf("%d attempts: %d bad password, %d locked, %d passwords checked", burst, bad, locked, checked.Load())
	if n := checked.Load(); n > limit {
		t.Errorf("%d passwords checked in a burst, limit %d", n, limit)
	}
	if bad >= limit {
		t.Errorf("%d attempts told \"bad password\", want fewer than the limit %d", bad, limit)
	}

	before := checked.Load()
	var le *LockedError
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); !errors.As(err, &le) {
		t.Fatalf("right password after the burst = %v, want *LockedError", err)
	}
	if checked.Load() != before {
		t.Error("the password was checked while locked out")
	}

	if _, err := s.Unlock(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unlock(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Unlock(ctx, "ADMIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); err != nil {
		t.Fatalf("right password after Unlock: %v", err)
	}
}

// Failures are counted per (username, address), per address and per
// username; each counter locks only what it counts.
func TestLockoutScope(t *testing.T) {
	t.Parallel()
	const (
		a, b, c = "198.51.100.1", "198.51.100.2", "198.51.100.3"
	)
	tests := []struct {
		name     string
		opts     Options
		failures []attempt
		locked   []attempt // the right password is refused
		open     []attempt // the right password logs in
	}{
		{
			name:     "pair: one address locks only itself",
			opts:     Options{MaxFailures: 3},
			failures: []attempt{{"admin", a}, {"admin", a}, {"admin", a}},
			locked:   []attempt{{"admin", a}},
			open:     []attempt{{"admin", b}, {"other", a}},
		},
		{
			name: "pair: a long run from one address does not lock others out",
			opts: Options{MaxFailures: 3},
			failures: []attempt{
				{"admin", a}, {"admin", a}, {"admin", a}, {"admin", a}, {"admin", a},
				{"admin", a}, {"admin", a}, {"admin", a}, {"admin", a}, {"admin", a},
			},
			locked: []attempt{{"admin", a}},
			open:   []attempt{{"admin", b}},
		},
		{
			name:     "address: spraying locks that address for the usernames that failed there",
			opts:     Options{MaxFailures: 3, MaxAddressFailures: 4},
			failures: []attempt{{"u1", a}, {"u2", a}, {"u3", a}, {"other", a}},
			locked:   []attempt{{"other", a}, {"u1", a}},
			open:     []attempt{{"admin", a}, {"other", b}},
		},
		{
			name:     "address: strings that are no username count there too, and are refused when it is full",
			opts:     Options{MaxAddressFailures: 2},
			failures: []attempt{{"no such user!", a}, {"", a}},
			locked:   []attempt{{"bad user!", a}},
			open:     []attempt{{"admin", a}, {"admin", b}},
		},
		{
			// Issue 25: a pupil behind the school's NAT address fails 31
			// times with usernames that do not exist; the admin, at the
			// same address, with the right password, still gets in.
			name:     "address: failures for unknown usernames never lock out a real user",
			opts:     Options{},
			failures: nobodies(31, a),
			locked:   []attempt{{"nobody3", a}},
			open:     []attempt{{"admin", a}, {"other", a}},
		},
		{
			name:     "username: guesses from many addresses lock it everywhere",
			opts:     Options{MaxFailures: 2, MaxAddressFailures: 2, MaxUserFailures: 4},
			failures: []attempt{{"admin", a}, {"admin", a}, {"admin", b}, {"admin", b}},
			locked:   []attempt{{"admin", c}},
			open:     []attempt{{"other", c}},
		},
		{
			name:     "ipv6: one /64 is one address",
			opts:     Options{MaxFailures: 2},
			failures: []attempt{{"admin", "2001:db8:1:2::1"}, {"admin", "2001:db8:1:2:ffff::9"}},
			locked:   []attempt{{"admin", "2001:db8:1:2::77"}},
			open:     []attempt{{"admin", "2001:db8:1:3::1"}, {"admin", a}},
		},
		{
			name:     "ipv4-mapped ipv6 is the ipv4 address",
			opts:     Options{MaxFailures: 2},
			failures: []attempt{{"admin", "::ffff:198.51.100.1"}, {"admin", a}},
			locked:   []attempt{{"admin", a}, {"admin", "::ffff:198.51.100.1"}},
			open:     []attempt{{"admin", b}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := newStore(t, tt.opts)
			for _, u := range []string{"admin", "other"} {
				if _, err := s.CreateSuperuser(ctx, u, "", goodPassword); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.failures {
				if _, err := s.Authenticate(ctx, f.user, "wrong password 1", f.addr); !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("failure %v: %v", f, err)
				}
			}
			for _, l := range tt.locked {
				var le *LockedError
				if _, err := s.Authenticate(ctx, l.user, goodPassword, l.addr); !errors.As(err, &le) {
					t.Errorf("%s from %s = %v, want *LockedError", l.user, l.addr, err)
				}
			}
			for _, o := range tt.open {
				if _, err := s.Authenticate(ctx, o.user, goodPassword, o.addr); err != nil {
					t.Errorf("%s from %s: %v", o.user, o.addr, err)
				}
			}
		})
	}
}

// attempt is a login of user from addr.
type attempt struct{ user, addr string }

// nobodies are n failures of usernames nobody0… from addr.
func nobodies(n int, addr string) []attempt {
	out := make([]attempt, n)
	for i := range out {
		out[i].user, out[i].addr = "nobody"+strconv.Itoa(i), addr
	}
	return out
}

// LoginLocks and Unlock say which locks stop a user; Unlock lifts every
// one of them, the address lock included (for that user only).
func TestUnlockLiftsEveryLock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	const nat, home = "203.0.113.50", "198.51.100.9"
	s := newStore(t, Options{Now: clk.Now, MaxFailures: 3, MaxAddressFailures: 4, MaxUserFailures: 6})
	for _, u := range []string{"admin", "pupil"} {
		if _, err := s.CreateSuperuser(ctx, u, "", goodPassword); err != nil {
			t.Fatal(err)
		}
	}
	fail := func(user, addr string) error {
		_, err := s.Authenticate(ctx, user, "wrong password 1", addr)
		return err
	}
	for i := range 4 { // the NAT address fills with unknown usernames
		_ = fail("ghost"+strconv.Itoa(i), nat)
	}
	// One typo of the admin's at the school: locked there, by the address.
	var le *LockedError
	if err := fail("admin", nat); !errors.As(err, &le) || le.Scope != LockAddress {
		t.Fatalf("the admin's failure from a full address = %v, want *LockedError of the address", err)
	}
	if !le.Until.Equal(clk.Now().Add(time.Hour)) {
		t.Errorf("locked until %v, want an hour from now", le.Until)
	}
	for range 3 { // and a lock-out of its own from home
		_ = fail("admin", home)
	}
	if _, err := s.Authenticate(ctx, "admin", goodPassword, home); !errors.As(err, &le) || le.Scope != LockPair {
		t.Fatalf("right password from home = %v, want *LockedError of the pair", err)
	}

	l, err := s.LoginLocks(ctx, "Admin")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Locked() || len(l.Addresses) != 2 || l.UserFailures != 4 || !l.UserUntil.IsZero() {
		t.Fatalf("LoginLocks = %+v", l)
	}
	for _, a := range l.Addresses {
		switch a.Address {
		case nat:
			if a.Failures != 1 || !a.PairUntil.IsZero() || a.AddressUntil.IsZero() {
				t.Errorf("at the NAT: %+v, want 1 failure and the address lock", a)
			}
		case home:
			if a.Failures != 3 || a.PairUntil.IsZero() || !a.AddressUntil.IsZero() {
				t.Errorf("at home: %+v, want 3 failures and the pair lock", a)
			}
		default:
			t.Errorf("unexpected address %+v", a)
		}
	}

	lifted, err := s.Unlock(ctx, "admin")
	if err != nil || len(lifted.Addresses) != 2 {
		t.Fatalf("Unlock = %+v, %v", lifted, err)
	}
	for _, addr := range []string{nat, home} {
		if _, err := s.Authenticate(ctx, "admin", goodPassword, addr); err != nil {
			t.Errorf("right password from %s after Unlock: %v", addr, err)
		}
	}
	if l, err := s.LoginLocks(ctx, "admin"); err != nil || l.Locked() || len(l.Addresses) != 0 {
		t.Errorf("LoginLocks after Unlock = %+v, %v", l, err)
	}
	// The address stays locked for the other usernames that failed there.
	if _, err := s.Authenticate(ctx, "ghost1", goodPassword, nat); !errors.As(err, &le) {
		t.Errorf("ghost1 at the NAT after the admin's unlock = %v, want still locked", err)
	}
	if _, err := s.LoginLocks(ctx, "ghost1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoginLocks(unknown) = %v, want ErrNotFound", err)
	}
}

func TestAddressKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":                "192.0.2.1",
		"::ffff:192.0.2.1":         "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"fe80::1%eth0":             "fe80::/64",
		"::1":                      "::/64",
		"":                         "unknown",
		"192.0.2.1:1234":           "unknown",
		"p|admin|x#1":              "unknown",
		"2001:db8::1, 192.0.2.200": "unknown",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
