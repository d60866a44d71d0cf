package store

import "strings"

// compactDocs copies freshly decoded students into one array and their
// strings into one string, so that a snapshot of 100,000 students is two
// objects for the garbage collector instead of eight per student (the
// student and each of its seven strings): every GC cycle of the app marks
// the whole snapshot, and sweeps what it marked. Substrings share their
// string's memory, so nothing is copied again; a student replaced later
// (an update) leaves its slot unused until the next full load.
// compactStudents is true but in BenchmarkSnapshotGC's comparison.
var compactStudents = true

func compactDocs(docs []*studentDoc) []*studentDoc {
	size := 0
	for _, d := range docs {
		size += len(d.RegistrationNo) + len(d.FirstName) + len(d.SecondName) + len(d.RegNoKey) +
			len(d.FirstNameKey) + len(d.SecondNameKey) + len(d.Search)
	}
	var b strings.Builder
	b.Grow(size)
	for _, d := range docs {
		for _, s := range [...]string{d.RegistrationNo, d.FirstName, d.SecondName, d.RegNoKey, d.FirstNameKey, d.SecondNameKey, d.Search} {
			b.WriteString(s)
		}
	}
	all := b.String()
	off := 0
	take := func(n int) string {
		s := all[off : off+n]
		off += n
		return s
	}
	slab := make([]studentDoc, len(docs))
	out := make([]*studentDoc, len(docs))
	for i, d := range docs {
		c := &slab[i]
		*c = *d
		c.RegistrationNo, c.FirstName, c.SecondName = take(len(d.RegistrationNo)), take(len(d.FirstName)), take(len(d.SecondName))
		c.RegNoKey, c.FirstNameKey, c.SecondNameKey = take(len(d.RegNoKey)), take(len(d.FirstNameKey)), take(len(d.SecondNameKey))
		c.Search = take(len(d.Search))
		out[i] = c
	}
	return out
}
