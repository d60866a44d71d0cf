package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/store"
)

// Bytes that once gave 500s get a normal page, on the public and the admin
// list: NUL, invalid UTF-8, and a two-byte character cut by the 200-byte
// limit.
func TestSearchOddInputGetsAPage(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.addStudent("S001", "Amina", "Otieno")
	b := e.browser()
	b.login()
	cut := strings.Repeat("a", 199) + "%C3%A9" // é across byte 200
	for _, q := range []string{"%00", "%ff%fe", cut, "ami%00na", "%C3"} {
		for _, path := range []string{"/", "/admin/students/"} {
			r := b.get(path + "?q=" + q)
			wantCode(t, r, http.StatusOK)
			wantNoBody(t, r, "Server Error", "\x00", "\xff")
		}
	}
	// NUL and invalid UTF-8 alone are no query at all: every student.
	wantBody(t, b.get("/?q=%00"), "Otieno")
	wantBody(t, b.get("/?q=%ff%fe"), "Otieno")
}

// Several words match across fields; accents and case do not matter; each
// tenant's search sees its own students only.
func TestSearchAsPeopleExpectThroughTheApp(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	z := newEnv(t, "zulu", envOptions{})
	a.addStudent("S001", "Amina", "Otieno")
	a.addStudent("S002", "Zoë", "Ñúñez")
	a.addStudent("S003", "Otieno", "Kamau")
	z.addStudent("Z001", "Amina", "Otieno")
	z.addStudent("Z002", "Zoe", "Nunez")
	b := a.browser()
	tests := []struct {
		q       string
		want    []string
		wantNot []string
	}{
		{"Amina+Otieno", []string{"S001"}, []string{"S003", "Z001"}},
		{"zoe", []string{"S002", "Zoë"}, []string{"Z002"}},
		{"nunez", []string{"Ñúñez"}, []string{"Z002", "Nunez"}},
		{"s001", []string{"S001"}, []string{"Z001"}},
		{"amina", []string{"S001"}, []string{"Z001"}},
	}
	for _, tc := range tests {
		r := b.get("/?q=" + tc.q)
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, tc.want...)
		wantNoBody(t, r, tc.wantNot...)
	}
}

// A list whose query outlives the store's deadline answers 503 with
// Retry-After, promptly, not 500.
func TestSlowListAnswers503(t *testing.T) {
	e := newEnv(t, "acme", envOptions{storeOpts: store.Options{QueryTimeout: 5 * time.Millisecond, ReadModel: store.ReadModelOff}})
	filler := store.New(e.db.(*mongo.Database), store.Options{})
	rows := make([]store.StudentInput, 5000)
	for i := range rows {
		rows[i] = store.StudentInput{RegistrationNo: fmt.Sprintf("F-%05d", i), FirstName: "Fill", SecondName: fmt.Sprint("Er", i)}
	}
	if n, rowErrs, err := filler.ImportStudents(t.Context(), rows, nil); err != nil || len(rowErrs) > 0 || n != len(rows) {
		t.Fatalf("fill: %d, %v, %v", n, rowErrs, err)
	}
	start := time.Now()
	r := e.browser().get("/?q=nobody+matches")
	wantCode(t, r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if took := time.Since(start); took > 10*time.Second { // generous for a busy machine
		t.Errorf("503 after %v", took)
	}
	if !strings.Contains(e.logs.String(), "database too slow") {
		t.Error("the timeout was not logged")
	}
}
