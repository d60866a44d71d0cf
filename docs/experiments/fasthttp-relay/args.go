package main

import "os"

// flagArgs drops the "proxy" subcommand word.
func flagArgs() []string {
	a := os.Args[1:]
	if len(a) > 0 && a[0] == "proxy" {
		a = a[1:]
	}
	return a
}
