//go:build !unix

package supervisor

import "errors"

// diskSpace is not measured here.
func diskSpace(string) (free, size uint64, err error) {
	return 0, 0, errors.New("free disk space is measured on Unix only")
}
