package store

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// encodePrev writes sn as the release before saved it (format 3: every
// field of every student, zstd-compressed), as its encodeSnapshot did.
func encodePrev(t *testing.T, sn *snapshot, tenantID string) []byte {
	t.Helper()
	n := sn.count()
	b := append([]byte(nil), snapMagic...)
	b = binary.AppendUvarint(b, snapFormatPrev)
	b = appendString(b, tenantID)
	b = binary.AppendVarint(b, sn.seq)
	b = binary.AppendUvarint(b, uint64(n))
	r := blockReader{sn: sn}
	derived := 0
	for pos := range n {
		v := r.parse(pos, allTexts, nil)
		created, updated := v.created, v.updated
		if v.flags&recNoCreated != 0 {
			created = prevZeroNanos
		}
		if v.flags&recNoUpdated != 0 {
			updated = prevZeroNanos
		}
		b = binary.AppendVarint(b, v.id)
		b = binary.AppendVarint(b, created)
		b = binary.AppendVarint(b, updated-created)
		for _, s := range v.texts {
			b = appendString(b, s)
		}
		for _, x := range v.nums {
			b = binary.AppendUvarint(b, x)
		}
		if prevDerivedKeys(&v) {
			derived++
			b = append(b, 1)
			joined := numKeys - 1
			for _, k := range v.keys {
				joined += len(k)
			}
			b = appendString(b, v.search[joined:])
			continue
		}
		b = append(b, 0)
		for _, s := range [...][]byte{v.keys[ordRegNo], v.keys[ordFirst], v.keys[ordSecond], v.search} {
			b = appendString(b, s)
		}
	}
	if derived == 0 || derived == n {
		t.Fatalf("%d of %d students with derived keys: want both kinds", derived, n)
	}
	for _, o := range [...]int{ordRegNo, ordFirst, ordSecond} {
		for _, p := range sn.posOf[o] {
			b = binary.AppendUvarint(b, uint64(p))
		}
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// prevDerivedKeys: format 3 left out keys that are the ASCII lower case
// of the names.
func prevDerivedKeys(v *studentView) bool {
	if v.flags&recKeysInSearch == 0 {
		return false
	}
	for i, k := range v.keys {
		s := v.texts[i]
		if len(k) != len(s) {
			return false
		}
		for j, c := range s {
			if c < 0x20 || c > 0x7e || strings.ToLower(string(c)) != string(k[j]) {
				return false
			}
		}
	}
	return true
}

// savePrev replaces the saved model of s with sn in format 3, its head
// saying tenantID.
func savePrev(t *testing.T, s *Store, sn *snapshot, payloadTenant, headTenant string) {
	t.Helper()
	h := head(t, s)
	if err := s.writeSnapshot(t.Context(), headTenant, h.Seq, sn.count(), encodePrev(t, sn, payloadTenant), h.Gen); err != nil {
		t.Fatal(err)
	}
	setHead(t, s, "format", snapFormatPrev)
}

// loadedModel is the model a new process of s's database loads.
func loadedModel(t *testing.T, s *Store) *snapshot {
	t.Helper()
	fresh := reopen(s, nil)
	if _, err := fresh.ListStudents(t.Context(), ListOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh.rm.mu.RLock()
	defer fresh.rm.mu.RUnlock()
	return fresh.rm.snap
}

// A model saved by the release before (format 3) is read once, answers
// as the database does, and is saved again in this format; a copy of
// school A's in school B's database, its head claiming B, is refused by
// the payload's own tenant ID (both schools hold the same student IDs),
// and B answers from its own students.
func TestSavedModelOfTheReleaseBefore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	names := func(prefix string) func(int) StudentInput {
		return func(i int) StudentInput {
			in := studentNames(prefix)(i)
			if i%3 == 0 {
				in.SecondName = "Ñúñez" // keys that are not the ASCII lower case
			}
			return in
		}
	}
	a := savedSchool(t, "tenant-a", 120, names("Amina"))
	b := savedSchool(t, "tenant-b", 120, names("Baraka"))
	snA := loadedModel(t, a)
	savePrev(t, a, snA, "tenant-a", "tenant-a")
	savePrev(t, b, snA, "tenant-a", "tenant-b")

	for _, q := range []ListOptions{{PerPage: 500}, {PerPage: 500, Query: "ñúñez"}, {PerPage: 50, Sort: "-second_name"}} {
		got, why := loadWith(t, a, q)
		if why != nil {
			t.Fatalf("school A's model of format 3 not used: %v", why)
		}
		want, err := New(a.db, Options{ReadModel: ReadModelOff}).ListStudents(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Students, want.Students) || got.Total != want.Total {
			t.Fatalf("%+v: answered %v, the database holds %v", q, regNos(got), regNos(want))
		}
	}
	waitHead(t, a, func(h snapHead) bool { return h.Format == snapFormat && h.TenantID == "tenant-a" })

	got, why := loadWith(t, b, ListOptions{PerPage: 500})
	if !errors.Is(why, errSnapshotUnusable) || !strings.Contains(why.Error(), `payload of tenant ID "tenant-a"`) {
		t.Fatalf("school A's model in school B's database: %v, want it refused", why)
	}
	want, err := New(b.db, Options{ReadModel: ReadModelOff}).ListStudents(ctx, ListOptions{PerPage: 500})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Students, want.Students) || strings.Contains(strings.Join(regNos(got), " "), "Amina") {
		t.Fatalf("school B answered %v, its database holds %v", regNos(got), regNos(want))
	}
	for _, st := range got.Students {
		if strings.HasPrefix(st.FirstName, "Amina") {
			t.Fatalf("school B answered school A's student %+v", st)
		}
	}
}
