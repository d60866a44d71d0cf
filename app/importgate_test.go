package app

import (
	"net/http"
	"strings"
	"testing"
)

func TestImportGate(t *testing.T) {
	g := newImportGate(2)
	g.release = func() {}
	steps := []struct {
		op      string // "enter" or "leave"
		user    string
		rows    int
		want    gateRefusal // enter
		release bool        // leave
	}{
		{op: "enter", user: "amina", want: gateOK},
		{op: "enter", user: "amina", want: gateUserBusy}, // one at a time per user
		{op: "enter", user: "kofi", want: gateOK},
		{op: "enter", user: "zawadi", want: gateAppBusy}, // two per app
		{op: "leave", user: "amina", rows: 50_000},       // large, but kofi's still runs: no release yet
		{op: "enter", user: "amina", want: gateOK},       // free again once left
		{op: "enter", user: "zawadi", want: gateAppBusy},
		{op: "leave", user: "amina", rows: 10},
		{op: "leave", user: "kofi"}, // last, small: no release
		{op: "enter", user: "zawadi", want: gateOK},
		{op: "leave", user: "zawadi", rows: 100_000, release: true}, // last and large
	}
	for i, s := range steps {
		switch s.op {
		case "enter":
			if got := g.enter(s.user); got != s.want {
				t.Fatalf("step %d: enter(%s) = %d, want %d", i, s.user, got, s.want)
			}
		case "leave":
			if got := g.leave(s.user, s.rows); got != s.release {
				t.Fatalf("step %d: leave(%s, %d) released = %v, want %v", i, s.user, s.rows, got, s.release)
			}
		}
	}
}

// Through HTTP: while an import of the same person is being planned, a
// second upload gets 429 with Retry-After; while the app plans as many
// as it may (other people's), an upload gets 503 with Retry-After; both
// say why, import nothing, and keep no slot; once the others end, the
// same upload is previewed.
func TestImportGateHTTP(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	users, err := e.store.Users(t.Context())
	if err != nil || len(users) != 1 {
		t.Fatalf("users: %v %v", users, err)
	}
	me := users[0].ID
	csv := "registration_no,first_name,second_name\nG-1,Amina,Otieno\nG-2,Kofi,Mensah\n"
	upload := func() response {
		t.Helper()
		p := b.get("/admin/students/import/")
		return b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": csrfOf(t, p.body)}, "file", csv)
	}
	refused := func(step string, r response, code int, words string) {
		t.Helper()
		wantCode(t, r, code)
		wantBody(t, r, words)
		if got := r.header.Get("Retry-After"); got == "" {
			t.Errorf("%s: no Retry-After", step)
		}
		if strings.Contains(r.body, `name="payload"`) {
			t.Errorf("%s: a refused upload offers to import", step)
		}
		if n := e.count(); n != 0 {
			t.Fatalf("%s: %d students imported", step, n)
		}
	}

	// The person's first import is being planned (as a request in
	// flight holds it): their second is refused.
	if e.app.imports.enter(me) != gateOK {
		t.Fatal("the gate refused the first import")
	}
	refused("second of the same person", upload(), http.StatusTooManyRequests, "Your previous import is still being checked")
	e.app.imports.leave(me, 2)

	// Two other people's imports are being planned: the app is full.
	for _, other := range []string{"other-1", "other-2"} {
		if e.app.imports.enter(other) != gateOK {
			t.Fatalf("the gate refused %s", other)
		}
	}
	refused("third in the app", upload(), http.StatusServiceUnavailable, "Other imports are being checked right now")
	if e.app.imports.enter(me) != gateAppBusy {
		t.Fatal("a refused upload kept a slot, or the gate let a third in")
	}
	e.app.imports.leave("other-1", 2)

	// One slot free: the upload is previewed, and leaves its slot.
	r := upload()
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "2 valid student rows")
	e.app.imports.leave("other-2", 2)
	if e.app.imports.enter(me) != gateOK {
		t.Fatal("the previewed upload kept its slot")
	}
}
