package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp is returned when --help was asked for and printed.
var errHelp = errors.New("help shown")

// envNames maps flags whose environment variable is named by their own
// ecosystem rather than CAMPUS_<FLAG>.
var envNames = map[string]string{
	"mongodb-uri":      "MONGODB_URI",
	"mongodb-uri-file": "MONGODB_URI_FILE",
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	if n, ok := envNames[name]; ok {
		return n
	}
	return "CAMPUS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newFlags returns a FlagSet whose usage lists each flag with its
// environment variable.
func newFlags(name, argsSynopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("campus "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: campus %s [flags] %s\n\n%s\n", name, argsSynopsis, description)
		printFlags(w, fs)
	}
	return fs
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
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
		fmt.Fprintf(w, "  --%s\n      %s%s [$%s]\n", f.Name, f.Usage, def, envName(f.Name))
	})
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable. Flags win over the environment.
//
// --help prints the command's usage on standard output (exit 0); a bad
// flag is an error that points to --help, on standard error.
func parseFlags(fs *flag.FlagSet, args []string, e *env) error {
	fs.SetOutput(io.Discard) // errors are returned, help printed below
	// Flags may come before or after positional arguments
	// (`campus tenant create lagos --host lagos.school.localhost`); a "--"
	// ends flag parsing.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(e.stdout)
				fs.Usage()
				return errHelp
			}
			return fmt.Errorf("%w: %v (see `%s --help`)", errUsage, err, fs.Name())
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
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := e.getenv(envName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usageErr("$%s: %v", envName(f.Name), serr)
			}
		}
	})
	return err
}

// stringList is a repeatable string flag (--host a --host b).
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

// Set appends; a comma-separated value (as from an environment variable)
// adds several.
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
