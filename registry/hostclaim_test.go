package registry

import (
	"errors"
	"testing"
)

// The shipped campus dev set must keep working, and issue 25's attacks
// (`tenant host add accra x.nairobi.school.localhost`, `… accra localhost`)
// must not.
func TestCheckHostClaim(t *testing.T) {
	shipped := []HostOwner{
		{"school.localhost", "default"},
		{"nairobi.school.localhost", "nairobi"},
		{"accra.school.localhost", "accra"},
		{"records.greenhill.ac.ke", "greenhill"},
	}
	cases := []struct {
		host, tenant string
		want         error // nil, ErrHostTaken or ErrInvalid
		near         string
	}{
		{"lagos.school.localhost", "lagos", nil, ""},
		{"x.nairobi.school.localhost", "accra", ErrHostTaken, "nairobi.school.localhost"},
		{"x.nairobi.school.localhost", "nairobi", nil, ""}, // its own subdomain
		{"localhost", "accra", ErrInvalid, ""},
		{"intranet", "accra", ErrInvalid, ""},
		{"nairobi.school.localhost", "accra", ErrHostTaken, ""},
		{"school.localhost", "lagos", ErrHostTaken, ""},
		{"greenhill.ac.ke", "accra", ErrHostTaken, "records.greenhill.ac.ke"}, // above
		{"ac.ke", "accra", ErrHostTaken, "records.greenhill.ac.ke"},
		{"portal.records.greenhill.ac.ke", "accra", ErrHostTaken, "records.greenhill.ac.ke"}, // under
		{"other.greenhill.ac.ke", "accra", nil, ""},                                          // a sibling
		{"xschool.localhost", "lagos", nil, ""},                                              // a suffix that is no parent
	}
	for _, c := range cases {
		err := CheckHostClaim(c.host, c.tenant, shipped)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s claims %s: %v, want allowed", c.tenant, c.host, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s claims %s: %v, want %v", c.tenant, c.host, err, c.want)
			continue
		}
		var taken *HostTakenError
		if errors.As(err, &taken) && taken.Near != c.near {
			t.Errorf("%s claims %s: near %q, want %q", c.tenant, c.host, taken.Near, c.near)
		}
	}
	// The shipped set is acceptable in either order of creation.
	for i := range shipped {
		var others []HostOwner
		for j := range shipped {
			if j != i {
				others = append(others, shipped[j])
			}
		}
		if err := CheckHostClaim(shipped[i].Host, shipped[i].Tenant, others); err != nil {
			t.Errorf("shipped %s: %v", shipped[i].Host, err)
		}
	}
}

func TestHostAncestors(t *testing.T) {
	got := HostAncestors("a.b.school.localhost")
	want := []string{"b.school.localhost", "school.localhost", "localhost"}
	if len(got) != len(want) {
		t.Fatalf("HostAncestors = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("HostAncestors = %q, want %q", got, want)
		}
	}
}
