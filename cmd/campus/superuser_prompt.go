package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/campus-saas/campus/store"
)

// promptAttempts is how often createsuperuser asks again for one answer.
const promptAttempts = 3

// askSuperuser asks for what --username/--email did not give, as Django's
// createsuperuser does: the username is checked first (format, and that
// the tenant has no such user yet), then the email, then the password
// (twice); a bad answer, a weak password or two passwords that differ are
// explained and asked again, up to promptAttempts times each.
func askSuperuser(ctx context.Context, m *manageCtx, username, email string) (string, string, string, error) {
	p := newPrompter(m.e)
	existing, err := m.store.Users(ctx)
	if err != nil {
		return "", "", "", fmt.Errorf("tenant %s: list users: %w", m.tenant.Name, err)
	}
	taken := func(u string) bool {
		for _, x := range existing {
			if strings.EqualFold(x.Username, strings.TrimSpace(u)) {
				return true
			}
		}
		return false
	}
	checkUser := func(u string) string {
		if msg := store.ValidateSuperuser(u, "", "")["username"]; msg != "" {
			return "username " + msg
		}
		if taken(u) {
			return "that username is taken at " + m.tenant.Name
		}
		return ""
	}
	given := username != ""
	for i := 0; ; i++ {
		if !given {
			if username, err = p.line("Username: "); err != nil {
				return "", "", "", err
			}
		}
		msg := checkUser(username)
		if msg == "" {
			break
		}
		if given || i+1 == promptAttempts {
			return "", "", "", fmt.Errorf("not saved: %s", msg)
		}
		fmt.Fprintf(m.e.stderr, "Error: %s. Try again.\n", msg)
	}
	for i := 0; email == ""; i++ {
		if email, err = p.line("Email address (optional): "); err != nil {
			return "", "", "", err
		}
		msg := store.ValidateSuperuser(username, email, "")["email"]
		if msg == "" {
			break
		}
		if i+1 == promptAttempts {
			return "", "", "", fmt.Errorf("not saved: email %s", msg)
		}
		fmt.Fprintf(m.e.stderr, "Error: email %s. Try again.\n", msg)
		email = ""
	}
	for i := 0; ; i++ {
		password, err := p.newPassword()
		msg := ""
		switch {
		case errors.Is(err, errPasswordMismatch):
			msg = "the two passwords did not match"
		case err != nil:
			return "", "", "", err
		default:
			if m := store.ValidateSuperuser(username, email, password)["password"]; m != "" {
				// Every problem at once, one sentence each (store.PasswordProblems).
				msg = strings.TrimSuffix(strings.ReplaceAll(m, "\n", " "), ".")
			}
		}
		if msg == "" {
			return username, email, password, nil
		}
		if i+1 == promptAttempts {
			return "", "", "", fmt.Errorf("not saved: %s", msg)
		}
		fmt.Fprintf(m.e.stderr, "Error: %s. Try again.\n", msg)
	}
}
