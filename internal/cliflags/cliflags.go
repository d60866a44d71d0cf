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
			return fmt.Errorf("%w: %v (see `%s --help`)", ErrUsage, err, fs.Name())
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
