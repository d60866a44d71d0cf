package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/campus-saas/campus/registry"
)

// The wording of the usage errors an operator fixes by typing the command
// again (words.go words the typed errors of the lifecycle): each says what
// was wrong and, where it can be guessed, the command to type instead,
// written as `campus …` (the README's one way to run it: `go install
// ./cmd/campus`).

// cliName is how every hint the program prints names the command.
const cliName = "campus"

// tenantNameError words an invalid tenant NAME. retry builds the command
// line to suggest from a corrected name ("" when none can be guessed).
func tenantNameError(name string, err error, retry func(suggested string) string) error {
	var inv *registry.InvalidError
	if !errors.As(err, &inv) {
		return usageErr("%v", err)
	}
	if strings.HasSuffix(inv.Msg, "is reserved") {
		return usageErr("%q is reserved for Campus itself and cannot name a school; choose another name", name)
	}
	msg := fmt.Sprintf("%q is not a tenant name: a name goes into commands, logs and the database's name, so it is a lowercase "+
		"DNS label (a-z, 0-9 and '-', at most 63, no '-' at either end); the name a school's pages show is --display-name", name)
	if s := suggestName(name); s != "" && retry != nil {
		msg += "\nTry: " + retry(s)
	}
	return usageErr("%s", msg)
}

// suggestName turns what an operator typed ("Kisumu School") into a valid
// tenant name ("kisumu-school"), or "" when nothing is left.
func suggestName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	out := b.String()
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if registry.ValidateName(out) != nil {
		return ""
	}
	return out
}

// exampleHost is the host to suggest for a new school: beside `campus dev`
// a name under school.localhost (browsers send it to this machine),
// elsewhere the school's own domain.
func exampleHost(name string, embedded bool) string {
	if embedded {
		return name + ".school.localhost"
	}
	return name + ".example.org"
}

// missingHostError is `tenant create NAME` without --host.
func missingHostError(name string, embedded bool) error {
	return usageErr("a school needs at least one host name, the address its pages are served at (--host, repeatable; the first is "+
		"its primary host)\nTry: %s tenant create %s --host %s", cliName, name, exampleHost(name, embedded))
}

// hostArgError words a host argument that is not a host name. For a URL
// ("http://foo.example/") it says so and suggests the host in it (retry
// builds the command line); other problems keep the registry's words.
func hostArgError(arg string, err error, retry func(host string) string) error {
	if h := hostOfURL(arg); h != "" {
		if retry == nil {
			return usageErr("%q is a URL; give a host name, not a URL (like %s)", arg, h)
		}
		return usageErr("%q is a URL; give a host name, not a URL\nTry: %s", arg, retry(h))
	}
	var inv *registry.InvalidError
	if errors.As(err, &inv) {
		return usageErr("%q is not a host name: %s", arg, strings.TrimPrefix(inv.Msg, fmt.Sprintf("%q ", arg)))
	}
	return usageErr("%q is not a host name: %v", arg, err)
}

// hostOfURL is the host name in a URL-like argument ("http://foo.example/",
// "foo.example/admin/"), "" when arg is not one.
func hostOfURL(arg string) string {
	if !strings.Contains(arg, "://") && !strings.Contains(arg, "/") {
		return ""
	}
	s := arg
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	h, err := registry.NormalizeHost(u.Hostname())
	if err != nil {
		return ""
	}
	return h
}

// checkHostArgs checks the hosts of a command before anything is written,
// with the words of hostArgError.
func checkHostArgs(hosts []string, retry func(i int, host string) string) error {
	for i, h := range hosts {
		if _, err := registry.NormalizeHost(strings.TrimSpace(h)); err != nil || hostOfURL(h) != "" {
			if err == nil {
				err = errors.New("a URL")
			}
			return hostArgError(h, err, func(host string) string { return retry(i, host) })
		}
	}
	return nil
}

// plural is "1 row", "2 rows".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
