// Package commonpasswords tells whether a password is one of the 20,000
// most common (Django's list, shipped inside the binary compressed: 80 KB;
// BSD-licensed, see LICENSE beside this file). The list is unpacked on
// first use (a few milliseconds, about 1 MB of memory).
package commonpasswords

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"
	"sync"
)

//go:embed common-passwords.txt.gz
var listGz []byte

var (
	once sync.Once
	set  map[string]struct{}
	err  error
)

func load() {
	zr, e := gzip.NewReader(bytes.NewReader(listGz))
	if e != nil {
		err = fmt.Errorf("common passwords: %w", e)
		return
	}
	set = make(map[string]struct{}, 20000)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			set[w] = struct{}{}
		}
	}
	if e := sc.Err(); e != nil {
		err = fmt.Errorf("common passwords: %w", e)
	}
}

// Contains reports whether password, lower-cased and trimmed as Django
// compares it, is on the list. The list is part of the binary, so an
// error here is a broken build: it panics rather than let every password
// through.
func Contains(password string) bool {
	once.Do(load)
	if err != nil {
		panic(err)
	}
	_, ok := set[strings.ToLower(strings.TrimSpace(password))]
	return ok
}

// Len is the number of passwords on the list.
func Len() int {
	once.Do(load)
	if err != nil {
		panic(err)
	}
	return len(set)
}
