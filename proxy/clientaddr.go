package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// The client's address and scheme, as the apps learn them.
//
// The proxy drops every X-Forwarded-* header a client sends and sets its
// own (rewrite). Apps count login failures by the X-Forwarded-For address
// (app/login.go) and mark session cookies Secure by X-Forwarded-Proto, so
// a wrong value costs either security (a client choosing its address
// escapes the lock-out) or availability (behind a load balancer every
// visitor has the balancer's address, and one attacker locks the whole
// school out).
//
// So the headers of the connection's peer are believed only when the peer
// is one of Config.TrustedProxies (the operator's load balancers or TLS
// terminators; none by default). Then the client is found the way such
// chains are read: X-Forwarded-For from the right, skipping trusted hops;
// the first address that is not trusted is the client. A value that is
// not an address ends the walk (what is left of it may be anybody's), and
// so does maxForwardedHops. The scheme is https when the connection is
// TLS, or when a trusted peer says its last hop was (the last
// X-Forwarded-Proto value).

// maxForwardedHops bounds the X-Forwarded-For entries read per request.
const maxForwardedHops = 16

// ParseTrustedProxies reads a comma-separated list of IP addresses and
// CIDR prefixes ("10.0.0.0/8, 192.0.2.1"); "" is none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix (e.g. 10.0.0.0/8): %w", f, err)
			}
			if p.Masked() != p {
				return nil, fmt.Errorf("trusted proxy %q: the prefix has host bits set; did you mean %s?", f, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix (e.g. 10.0.0.0/8): %w", f, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trusted reports whether a is one of the operator's proxies.
func (p *Proxy) trusted(a netip.Addr) bool {
	for _, pre := range p.cfg.TrustedProxies {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// client returns the address and scheme of the client behind r (see
// above). The address is invalid only when the peer's is (a listener that
// is not TCP).
func (p *Proxy) client(r *http.Request) (netip.Addr, bool) {
	https := r.TLS != nil
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, https
	}
	peer := ap.Addr().Unmap()
	if len(p.cfg.TrustedProxies) == 0 || !p.trusted(peer) {
		return peer, https
	}
	if !https {
		if vs := r.Header.Values("X-Forwarded-Proto"); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			https = strings.EqualFold(strings.TrimSpace(last), "https")
		}
	}
	client := peer
	vs := r.Header.Values("X-Forwarded-For")
	hops := 0
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		for v != "" {
			var hop string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, ""
			}
			if hops++; hops > maxForwardedHops {
				return client, https
			}
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				return client, https
			}
			client = a.Unmap()
			if !p.trusted(client) {
				return client, https
			}
		}
	}
	return client, https
}
