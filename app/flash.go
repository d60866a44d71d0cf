package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// A flash is one success message shown on the next admin page. The cookie
// holds only a message kind and a value; the sentence is chosen here by
// kind, and html/template escapes the value. A value-carrying cookie is
// signed with the session's CSRF token (a secret of this session, known to
// every instance of the tenant), so nobody else can plant a message with
// text of their choosing. Kinds without a value need no signature.
type flashKind string

const (
	flashAdded      flashKind = "added"
	flashChanged    flashKind = "changed"
	flashDeleted    flashKind = "deleted"
	flashBulkDelete flashKind = "bulk_deleted"
	flashBulkClass  flashKind = "bulk_class"
	flashBulkStatus flashKind = "bulk_status"
	flashLoggedOut  flashKind = "logged_out"
	flashNoneChosen flashKind = "none_selected"
	flashSettings   flashKind = "settings_saved"
)

// flashMsg is a message ready for the page; Level is a Bootstrap alert
// colour.
type flashMsg struct {
	Text  string
	Level string
}

var flashFormats = map[flashKind]string{
	flashAdded:      "The student “%s” was added successfully.",
	flashChanged:    "The student “%s” was changed successfully.",
	flashDeleted:    "The student “%s” was deleted successfully.",
	flashBulkDelete: "Successfully deleted %d students.",               // the value is the count
	flashBulkClass:  "Successfully changed the class of %d students.",  // the value is the count
	flashBulkStatus: "Successfully changed the status of %d students.", // the value is the count
	flashLoggedOut:  "You have been logged out.",
	flashNoneChosen: "Students must be selected in order to perform actions on them. No students have been changed.",
	flashSettings:   "The settings were saved.",
}

var flashLevels = map[flashKind]string{flashLoggedOut: "info", flashNoneChosen: "warning"}

func newFlashMsg(kind flashKind, text string) *flashMsg {
	level := flashLevels[kind]
	if level == "" {
		level = "success"
	}
	return &flashMsg{Text: text, Level: level}
}

const maxFlashValue = 400

func flashMAC(key string, kind flashKind, value string) []byte {
	m := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(m, "campus-flash\x00%s\x00%s", kind, value)
	return m.Sum(nil)
}

// setFlash stores a message for the next page of this session.
func (s *server) setFlash(w http.ResponseWriter, r *http.Request, kind flashKind, value string) {
	sess := stateOf(r).session
	if len(value) > maxFlashValue {
		value = strings.ToValidUTF8(value[:maxFlashValue], "") + "…"
	}
	v := string(kind)
	if value != "" {
		if sess == nil {
			return
		}
		enc := base64.RawURLEncoding
		v += "." + enc.EncodeToString([]byte(value)) + "." + enc.EncodeToString(flashMAC(sess.CSRFToken, kind, value))
	}
	s.setCookie(w, r, &http.Cookie{Name: flashCookie, Value: v, Path: "/admin/", MaxAge: 120})
}

// takeFlash returns the pending message, if it is genuine, and clears it.
func (s *server) takeFlash(w http.ResponseWriter, r *http.Request) *flashMsg {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	s.clearCookie(w, r, flashCookie, "/admin/")
	kind, rest, hasValue := strings.Cut(c.Value, ".")
	format, ok := flashFormats[flashKind(kind)]
	if !ok {
		return nil
	}
	if !hasValue {
		if strings.Contains(format, "%") {
			return nil
		}
		return newFlashMsg(flashKind(kind), s.tr(r, format))
	}
	sess := stateOf(r).session
	b64value, b64mac, ok := strings.Cut(rest, ".")
	if !ok || sess == nil || !strings.Contains(format, "%") {
		return nil
	}
	enc := base64.RawURLEncoding
	value, err1 := enc.DecodeString(b64value)
	mac, err2 := enc.DecodeString(b64mac)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, flashMAC(sess.CSRFToken, flashKind(kind), string(value))) {
		return nil
	}
	if strings.Contains(format, "%d") {
		n, err := strconv.Atoi(string(value))
		if err != nil {
			return nil
		}
		return newFlashMsg(flashKind(kind), s.tr(r, format, n))
	}
	return newFlashMsg(flashKind(kind), s.tr(r, format, string(value)))
}
