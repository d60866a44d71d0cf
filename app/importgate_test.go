package app

import "testing"

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
