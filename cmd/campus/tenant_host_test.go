package main

import (
	"strings"
	"testing"
)

// TestTenantHostCommand: `campus tenant host add|remove` with bad input
// gets a clear error and changes nothing; a host of one school cannot be
// given to another.
func TestTenantHostCommand(t *testing.T) {
	c := newCLI(t)
	a, b := uniqueTenant(t, "hosta"), uniqueTenant(t, "hostb")
	c.ok("tenant", "create", a, "--host", a+".school.localhost")
	c.ok("tenant", "create", b, "--host", b+".school.localhost")

	r := c.ok("tenant", "host", "add", a, "Records."+a+".Example.org")
	if !strings.Contains(r.stdout, "records."+a+".example.org") {
		t.Errorf("host add printed %q", r.stdout)
	}
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"tenant", "host"}, 2, "host add|remove NAME HOST"},
		{[]string{"tenant", "host", "add", a}, 2, "host add|remove NAME HOST"},
		{[]string{"tenant", "host", "rename", a, "x.example.org"}, 2, "host add|remove NAME HOST"},
		{[]string{"tenant", "host", "add", a, "not a host"}, 2, `"not a host" is not a host name`},
		{[]string{"tenant", "host", "add", a, "10.1.2.3"}, 2, "IP address"},
		{[]string{"tenant", "host", "add", "nobody-here", "x.example.org"}, 1, `unknown tenant "nobody-here"`},
		{[]string{"tenant", "host", "add", b, "records." + a + ".example.org"}, 1, `already belongs to tenant "` + a + `"`},
		{[]string{"tenant", "host", "add", b, a + ".school.localhost"}, 1, `already belongs to tenant "` + a + `"`},
		// Issue 25: nesting with another school's host, single labels.
		{[]string{"tenant", "host", "add", b, "x." + a + ".school.localhost"}, 1, `under or above "` + a + `.school.localhost", which belongs to tenant "` + a + `"`},
		{[]string{"tenant", "host", "add", b, "x.records." + a + ".example.org"}, 1, `which belongs to tenant "` + a + `"`},
		{[]string{"tenant", "host", "add", b, a + ".example.org"}, 1, `which belongs to tenant "` + a + `"`},
		{[]string{"tenant", "host", "add", b, "localhost"}, 2, "single-label"},
		{[]string{"tenant", "host", "remove", b, "records." + a + ".example.org"}, 1, "is not a host of tenant"},
		{[]string{"tenant", "host", "remove", a, a + ".school.localhost"}, 2, "primary host"},
	}
	for _, tc := range cases {
		r := c.run("", nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("campus %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.msg)
		}
	}
	// Nor can a new school be created with such a name.
	r = c.run("", nil, "tenant", "create", uniqueTenant(t, "hostc"), "--host", "www.records."+a+".example.org")
	if r.code == 0 || !strings.Contains(r.stderr, `under or above "records.`+a+`.example.org", which belongs to tenant "`+a+`"`) {
		t.Errorf("create with a host under a's: exit %d, stderr %q", r.code, r.stderr)
	}
	// Nothing changed for b; a still has its custom domain until removed.
	if r := c.ok("tenant", "show", b, "--json"); strings.Contains(r.stdout, "records.") {
		t.Errorf("b gained a host: %s", r.stdout)
	}
	c.ok("tenant", "host", "remove", a, "records."+a+".example.org")
	if r := c.ok("tenant", "show", a, "--json"); strings.Contains(r.stdout, "records.") {
		t.Errorf("a kept its removed host: %s", r.stdout)
	}
	// Now free: b may take it.
	c.ok("tenant", "host", "add", b, "records."+a+".example.org")
}
