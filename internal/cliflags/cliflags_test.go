package cliflags

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// Flags come before or after arguments; the environment fills only the
// flags env names, and never one given on the command line.
func TestParse(t *testing.T) {
	env := func(name string) string {
		if name == "data" {
			return "CAMPUS_DATA"
		}
		return ""
	}
	for _, tc := range []struct {
		name       string
		args       []string
		vars       map[string]string
		data       string
		yes        bool
		positional []string
		err        error
	}{
		{"defaults", nil, nil, "./.campus", false, nil, nil},
		{"flag after an argument", []string{"lagos", "--yes"}, nil, "./.campus", true, []string{"lagos"}, nil},
		{"allowed variable", nil, map[string]string{"CAMPUS_DATA": "/d"}, "/d", false, nil, nil},
		{"flag wins", []string{"--data", "/f"}, map[string]string{"CAMPUS_DATA": "/d"}, "/f", false, nil, nil},
		{"variable of a flag without one", nil, map[string]string{"CAMPUS_YES": "1"}, "./.campus", false, nil, nil},
		{"-- ends flags", []string{"--", "--yes"}, nil, "./.campus", false, []string{"--yes"}, nil},
		{"unknown flag", []string{"--nope"}, nil, "", false, nil, ErrUsage},
		{"help", []string{"--help"}, nil, "", false, nil, ErrHelp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := New("campus", "tenant delete", "NAME", "Delete.", env)
			data := fs.String("data", "./.campus", "data folder")
			yes := fs.Bool("yes", false, "do not ask")
			var help bytes.Buffer
			err := Parse(fs, tc.args, env, func(k string) string { return tc.vars[k] }, &help)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err == ErrHelp {
				if out := help.String(); !strings.Contains(out, "[$CAMPUS_DATA]") || strings.Contains(out, "$CAMPUS_YES") {
					t.Errorf("help shows the wrong variables:\n%s", out)
				}
			}
			if tc.err != nil {
				return
			}
			if *data != tc.data || *yes != tc.yes || strings.Join(fs.Args(), " ") != strings.Join(tc.positional, " ") {
				t.Errorf("data %q yes %v args %q", *data, *yes, fs.Args())
			}
		})
	}
}

func TestDidYouMean(t *testing.T) {
	for in, want := range map[string]string{"tenat": `; did you mean "tenant"?`, "zzzzzz": "", "ten": `; did you mean "tenant"?`} {
		if got := DidYouMean(in, []string{"tenant", "token", "dev"}); got != want {
			t.Errorf("DidYouMean(%q) = %q, want %q", in, got, want)
		}
	}
	// Two letters swapped are one edit; an unknown flag gets the same help.
	fs := New("campus", "tenant create", "NAME", "", func(string) string { return "" })
	fs.String("host", "", "")
	fs.String("display-name", "", "")
	for in, want := range map[string]string{"--hots": "did you mean --host?", "--dispaly-name": "did you mean --display-name?", "--zzzzzz": ""} {
		err := Parse(fs, []string{in, "x"}, func(string) string { return "" }, func(string) string { return "" }, io.Discard)
		if !errors.Is(err, ErrUsage) || want != "" && !strings.Contains(err.Error(), want) || want == "" && strings.Contains(err.Error(), "did you mean") {
			t.Errorf("Parse(%s): %v, want %q", in, err, want)
		}
	}
}
