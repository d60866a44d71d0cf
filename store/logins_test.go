package store

import (
	"errors"
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

	if err := s.Unlock(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unlock(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.Unlock(ctx, "ADMIN"); err != nil {
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
	type attempt struct{ user, addr string }
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
			name:     "address: spraying usernames locks that address",
			opts:     Options{MaxFailures: 3, MaxAddressFailures: 4},
			failures: []attempt{{"u1", a}, {"u2", a}, {"u3", a}, {"u4", a}},
			locked:   []attempt{{"admin", a}},
			open:     []attempt{{"admin", b}},
		},
		{
			name:     "address: strings that are no username count there too",
			opts:     Options{MaxAddressFailures: 2},
			failures: []attempt{{"no such user!", a}, {"", a}},
			locked:   []attempt{{"admin", a}},
			open:     []attempt{{"admin", b}},
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
