package registry

import (
	"strings"
)

// The host-claim rule (issue 25), shared by every backend: a school may
// not claim a host that is equal to, under (a subdomain of) or above (a
// parent of) another school's host, nor a single-label name such as
// "localhost" or "intranet". Two schools whose names nest would be one
// "site" to a browser (a cookie set for the parent domain reaches the
// child), and a child name reads as the parent school's own page to its
// pupils and parents.
//
// One explicit allowance keeps `campus dev`'s shipped layout working: a
// development apex, a two-label name under .localhost (school.localhost,
// the default school's), nests with no other school's name, in either
// order, so nairobi.school.localhost can be another school's. That is the
// platform-domain pattern of Heroku's herokuapp.com or Vercel's
// vercel.app, which those platforms put on the Public Suffix List so that
// browsers treat each app under it as its own site; .localhost names never
// leave the machine, and no public CA issues for them. The schools under
// the apex nest as usual among themselves (x.nairobi.school.localhost is
// nairobi's to claim, not accra's), and so does every other name. In
// production the platform's own domain should be no school's host: give
// each school its own name (nairobi.campus.example), none the apex.

// HostOwner is one claimed host and the tenant that owns it.
type HostOwner struct {
	Host   string
	Tenant string
}

// HostAncestors returns the names a normalised host is under, nearest
// first: "a.b.c" → "b.c", "c". A backend reads these (and the hosts under
// h) to hand CheckHostClaim what it needs.
func HostAncestors(h string) []string {
	var out []string
	for i := strings.IndexByte(h, '.'); i >= 0; i = strings.IndexByte(h, '.') {
		h = h[i+1:]
		out = append(out, h)
	}
	return out
}

// CheckHostClaim decides whether tenant may claim the normalised host h,
// given near: claimed hosts with their owners, at least every one that is
// h, one of h's ancestors or under h (others are ignored, as are the hosts
// of tenant itself). A
// conflict is a *HostTakenError naming the other school's host (Near); a
// single-label name is ErrInvalid.
func CheckHostClaim(h, tenant string, near []HostOwner) error {
	if !strings.Contains(h, ".") {
		return invalid("host", "%q is a single-label name; a school's host needs a domain (like %s.example.org)", h, h)
	}
	for _, o := range near {
		if o.Tenant == tenant {
			continue
		}
		if o.Host == h {
			return &HostTakenError{Host: h, Owner: o.Tenant}
		}
		if hostsNest(h, o.Host) {
			return &HostTakenError{Host: h, Owner: o.Tenant, Near: o.Host}
		}
	}
	return nil
}

// hostsNest reports whether two different normalised hosts are one under
// the other, outside the development-apex allowance (see above).
func hostsNest(a, b string) bool {
	if len(a) < len(b) {
		a, b = b, a
	}
	// a is the longer: is it under b?
	return strings.HasSuffix(a, "."+b) && !devApex(b)
}

// devApex reports whether h is a two-label name under .localhost.
func devApex(h string) bool {
	rest, ok := strings.CutSuffix(h, ".localhost")
	return ok && rest != "" && !strings.Contains(rest, ".")
}
