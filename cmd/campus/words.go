package main

import (
	"errors"
	"fmt"

	"github.com/campus-saas/campus/tenancy"
)

// describe words the typed errors of the tenant lifecycle (package
// tenancy) for an operator at the command line: the one place where they
// get the commands to run next. Other errors pass unchanged.
func describe(err error) error {
	var unreachable *tenancy.UnreachableError
	switch {
	case errors.As(err, &unreachable):
		return fmt.Errorf("cannot reach the database at %s (%s; address from %s; data folder %s).\n"+
			"Is `campus dev` running? It serves the embedded database; run this command while it runs, from the same folder "+
			"(or with the same --data). With your own MongoDB, set MONGODB_URI",
			tenancy.RedactURI(unreachable.URI), unreachable.Why, unreachable.From, unreachable.DataDir)
	}
	return err
}
