// Package cliflags parses the flags of the Campus commands (campus,
// campus-bench): flags before or after positional arguments, and, for the
// flags a command allows, a value from an environment variable when the
// flag is not on the command line.
package cliflags

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// ErrHelp is returned when --help was asked for and printed.
var ErrHelp = errors.New("help shown")

// ErrUsage marks an error whose message is a usage problem.
var ErrUsage = errors.New("usage")

// EnvFunc names the environment variable that may set a flag, or "" when
// the flag comes from the command line alone.
type EnvFunc func(flag string) string

// New returns a FlagSet of command "prog name" whose usage lists each
// flag with its environment variable, where it has one.
func New(prog, name, argsSynopsis, description string, env EnvFunc) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s %s [flags] %s\n\n%s\n", prog, name, argsSynopsis, description)
		printFlags(w, fs, env)
	}
	return fs
}

func printFlags(w io.Writer, fs *flag.FlagSet, env EnvFunc) {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		variable := ""
		if v := env(f.Name); v != "" {
			variable = " [$" + v + "]"
		}
		fmt.Fprintf(w, "  --%s\n      %s%s%s\n", f.Name, f.Usage, def, variable)
	})
}

// Parse parses args, then fills every flag not given on the command line
// that env names a variable for from getenv. Flags win over the
// environment.
//
// --help prints the command's usage on help (ErrHelp); a bad flag is an
// ErrUsage error that points to --help.
func Parse(fs *flag.FlagSet, args []string, env EnvFunc, getenv func(string) string, help io.Writer) error {
	fs.SetOutput(io.Discard) // errors are returned, help printed below
	// Flags may come before or after positional arguments
	// (`campus tenant create lagos --host lagos.school.localhost`); a "--"
	// ends flag parsing.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(help)
				fs.Usage()
				return ErrHelp
			}
			return fmt.Errorf("%w: %v%s (see `%s --help`)", ErrUsage, err, flagDidYouMean(fs, err), fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := env(f.Name)
		if set[f.Name] || err != nil || name == "" {
			return
		}
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%w: $%s: %v", ErrUsage, name, serr)
			}
		}
	})
	return err
}

// StringList is a repeatable string flag (--host a --host b).
type StringList []string

func (s *StringList) String() string { return strings.Join(*s, ",") }

// Set appends; a comma-separated value adds several.
func (s *StringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// DidYouMean suggests the known name closest to an unknown one:
// `; did you mean "tenant"?`, or "" when none is close.
func DidYouMean(name string, known []string) string {
	slices.Sort(known)
	best, bestD := "", 0
	for _, k := range known {
		d := editDistance(strings.ToLower(name), k)
		if (best == "" || d < bestD) && (d <= max(1, len(k)/3) || strings.HasPrefix(k, strings.ToLower(name)) && len(name) >= 2) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// flagDidYouMean suggests the flag of fs closest to the unknown one err
// names ("flag provided but not defined: -hots" → --host), "" otherwise.
func flagDidYouMean(fs *flag.FlagSet, err error) string {
	_, name, ok := strings.Cut(err.Error(), "flag provided but not defined: ")
	if !ok {
		return ""
	}
	var known []string
	fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
	hint := DidYouMean(strings.TrimLeft(name, "-"), known)
	if hint == "" {
		return ""
	}
	_, best, _ := strings.Cut(hint, "did you mean ")
	return "; did you mean --" + strings.Trim(best, `"?`) + "?"
}

// editDistance is the edit distance between a and b counting a swap of
// two neighbouring letters as one edit ("hots" is one from "host"): the
// optimal string alignment distance.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// Log is --log-level and --log-format.
type Log struct{ Level, Format string }

// Register adds the two flags to fs.
func (o *Log) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.Format, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text, json")
}

// Logger builds the logger writing to w: format auto is text when
// terminal, JSON otherwise. A bad value is an ErrUsage error.
func (o *Log) Logger(w io.Writer, terminal bool) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrUsage, o.Level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	format := o.Format
	if format == "auto" {
		format = "json"
		if terminal {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q: want auto, text or json", ErrUsage, o.Format)
}
