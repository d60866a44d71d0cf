package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// evictFromPageCache writes the file's dirty pages out, then drops its pages
// from the page cache (those no process has mapped), so that the next process to run it reads it from
// disk.
func evictFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("evict %s from the page cache: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil { // dirty pages (a fresh build) are not dropped
		return fmt.Errorf("evict %s from the page cache: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evict %s from the page cache: %w", path, err)
	}
	return nil
}
