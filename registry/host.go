package registry

import (
	"errors"
	"net"
	"strings"
)

// NormalizeHost turns a Host header (or an operator's host argument) into
// the form used as a routing key: lowercase, without port or trailing dot.
// It is the only place hosts are normalised; everything else trusts its
// output. Malformed input (empty, bad characters, bad port, over-long
// labels) is an error. A host name that needs no lowercasing comes back
// without allocating (it or a prefix of it): the proxy calls this on every
// request and for every host of every table rebuild.
func NormalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	if len(h) > 300 {
		return "", errors.New("host too long")
	}
	host := h
	if strings.HasPrefix(host, "[") { // IPv6 literal, maybe with port
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", errors.New("unterminated IPv6 literal")
		}
		rest := host[end+1:]
		if rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return "", errors.New("bad port")
		}
		ip := net.ParseIP(host[1:end])
		if ip == nil || ip.To4() != nil {
			return "", errors.New("bad IPv6 address")
		}
		return ip.String(), nil
	}
	if strings.Count(host, ":") > 1 { // bare IPv6 literal, as NormalizeHost returns it
		ip := net.ParseIP(host)
		if ip == nil || ip.To4() != nil {
			return "", errors.New("bad IPv6 address")
		}
		return ip.String(), nil
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !validPort(host[i+1:]) {
			return "", errors.New("bad port")
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return "", errors.New("bad host length")
	}
	upper := false
	label := 0
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if label == 0 || i+1 == len(host) || host[i+1] == '.' {
				return "", errors.New("label starts or ends with '-'")
			}
		case c == '.':
			if label == 0 {
				return "", errors.New("empty label")
			}
			label = 0
			continue
		default:
			return "", errors.New("invalid character in host")
		}
		label++
		if label > 63 {
			return "", errors.New("label longer than 63 characters")
		}
	}
	if label == 0 { // "a.." loses one trailing dot, not two
		return "", errors.New("empty label")
	}
	if !upper {
		// Already lowercase: h itself, or the part of it before a port or
		// trailing dot. No allocation on the request path.
		return host, nil
	}
	var b strings.Builder
	b.Grow(len(host))
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n <= 65535
}
