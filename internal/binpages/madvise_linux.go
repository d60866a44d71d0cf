package binpages

import "syscall"

// dontNeed advises the kernel that the pages of [start, start+n) are not
// needed: for a private file mapping never written, they are unmapped and
// read again from the file's cached pages on their next touch.
func dontNeed(start, n uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, n, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
