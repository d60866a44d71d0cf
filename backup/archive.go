package backup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// FormatName and FormatVersion identify an archive; a reader refuses any
// other name and any newer version.
const (
	FormatName    = "campus-tenant-backup"
	FormatVersion = 1
)

// maxLine bounds one line (one document): MongoDB documents are at most
// 16 MiB as BSON, and Extended JSON is larger.
const maxLine = 64 << 20

// Consistency says how the archive's documents relate in time.
type Consistency string

const (
	// Snapshot: every read in one snapshot session (MongoDB replica set).
	Snapshot Consistency = "snapshot"
	// Suspended: the tenant was suspended (not served) during the backup.
	Suspended Consistency = "suspended"
	// Live: collections read one after another while the school was
	// served; writes during the backup may be partly in it.
	Live Consistency = "live"
)

// Header is the first line of an archive.
type Header struct {
	Format        string          `json:"format"`
	Version       int             `json:"version"`
	CreatedAt     time.Time       `json:"created_at"`
	Tenant        json.RawMessage `json:"tenant"` // registry.Tenant as JSON
	SchemaVersion int             `json:"schema_version"`
	Consistency   Consistency     `json:"consistency"`
	CampusVersion string          `json:"campus_version,omitempty"`
}

// TenantRecord decodes the archived registry record.
func (h Header) TenantRecord() (registry.Tenant, error) {
	var t registry.Tenant
	if err := json.Unmarshal(h.Tenant, &t); err != nil {
		return registry.Tenant{}, fmt.Errorf("archive header: tenant record: %w", err)
	}
	return t, nil
}

// Trailer is the last line of an archive.
type Trailer struct {
	Collections map[string]int64 `json:"collections"`
	Documents   int64            `json:"documents"`
	SHA256      string           `json:"sha256"`
}

// Summary describes an archive written or read.
type Summary struct {
	Header      Header
	Tenant      registry.Tenant
	Collections []string // in archive order
	Trailer     Trailer
}

// excluded are the collections a backup leaves out, with the reason.
var excluded = map[string]string{
	"sessions":        "logged-in sessions: a restored school starts with everybody logged out",
	"login_failures":  "login throttling counters: short-lived, per client address",
	"password_resets": "one-time password-reset tokens: never valid twice, never restored",
	"students_journal": "the read model's change journal (store/readmodel.go): derived from students, " +
		"a restored school's apps load students afresh",
	"operations": "imports and bulk deletes in progress (store/operations.go): a backup holds what readers see, " +
		"with no operation marks",
	"students_snapshot": "the read model's saved copy (store/modelsnap.go): derived from students and the journal, " +
		"saved again by the restored school's first app",
}

// Excluded reports whether collection name is left out of backups:
// sessions, login attempts, one-time tokens and MongoDB's system.*.
func Excluded(name string) bool {
	_, ok := excluded[name]
	return ok || strings.HasPrefix(name, "system.")
}

// collectionName reports whether a restore accepts name as a collection
// name: 1 to 120 of these characters. The length is checked apart: a
// counted repetition ({0,119}) compiled into 119 nested states at every
// process start (1 ms and 90 KB of each app's start).
func collectionName(name string) bool {
	return len(name) <= 120 && collectionNameRe.MatchString(name)
}

var collectionNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// orderCollections sorts names, with id_claims, counters and meta last
// (see the package documentation): a student created during a live
// backup is then never in the archive without the ID claim that owns its
// ID (store/ids.go).
func orderCollections(names []string) []string {
	rank := func(n string) int {
		switch n {
		case "id_claims":
			return 1
		case "counters":
			return 2
		case "meta":
			return 3
		}
		return 0
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return names
}

// encoder writes the lines of one archive.
type encoder struct {
	file   io.Writer
	gz     *gzip.Writer
	buf    *bufio.Writer
	sum    hash.Hash
	out    io.Writer // buf and sum
	counts map[string]int64
	order  []string
	cur    string
	docs   int64
	line   []byte
}

func newEncoder(w io.Writer) *encoder {
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
	buf := bufio.NewWriterSize(gz, 256<<10)
	sum := sha256.New()
	return &encoder{file: w, gz: gz, buf: buf, sum: sum, out: io.MultiWriter(buf, sum), counts: map[string]int64{}}
}

func (e *encoder) writeJSON(key string, v any) error {
	b, err := json.Marshal(map[string]any{key: v})
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = e.out.Write(append(b, '\n'))
	return err
}

func (e *encoder) header(h Header) error { return e.writeJSON("header", h) }

func (e *encoder) collection(name string) error {
	if _, dup := e.counts[name]; dup {
		return fmt.Errorf("collection %s written twice", name)
	}
	e.counts[name] = 0
	e.order = append(e.order, name)
	e.cur = name
	return e.writeJSON("collection", name)
}

// doc writes one document given as canonical Extended JSON.
func (e *encoder) doc(extJSON []byte) error {
	e.line = append(append(append(e.line[:0], `{"doc":`...), extJSON...), "}\n"...)
	if _, err := e.out.Write(e.line); err != nil {
		return err
	}
	e.counts[e.cur]++
	e.docs++
	return nil
}

// close writes the trailer and flushes everything.
func (e *encoder) close() (Trailer, error) {
	t := Trailer{Collections: e.counts, Documents: e.docs, SHA256: hex.EncodeToString(e.sum.Sum(nil))}
	b, err := json.Marshal(map[string]any{"trailer": t})
	if err != nil {
		return Trailer{}, err
	}
	if _, err := e.buf.Write(append(b, '\n')); err != nil {
		return Trailer{}, err
	}
	if err := e.buf.Flush(); err != nil {
		return Trailer{}, err
	}
	return t, e.gz.Close()
}

// ErrCorrupt is wrapped by every error about an archive's content: not an
// archive, truncated, altered, or of a newer format.
var ErrCorrupt = errors.New("not a valid Campus tenant archive")

func corrupt(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrCorrupt, line, fmt.Sprintf(format, args...))
}

// decoder reads the lines of one archive and checks them as it goes.
type decoder struct {
	r       *bufio.Reader
	sum     hash.Hash
	lineNo  int
	header  Header
	tenant  registry.Tenant
	counts  map[string]int64
	order   []string
	cur     string
	docs    int64
	trailer *Trailer
}

func newDecoder(r io.Reader) (*decoder, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	return &decoder{r: bufio.NewReaderSize(gz, 256<<10), sum: sha256.New(), counts: map[string]int64{}}, nil
}

// readLine returns the next line without its newline; io.EOF at the end.
func (d *decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > maxLine {
				return nil, corrupt(d.lineNo+1, "line longer than %d bytes", maxLine)
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, corrupt(d.lineNo+1, "truncated (no newline at the end)")
		}
		return nil, fmt.Errorf("%w: line %d: %v", ErrCorrupt, d.lineNo+1, err)
	}
	d.lineNo++
	return line[:len(line)-1], nil
}

var docPrefix = []byte(`{"doc":`)

// next reads one line. For a document it returns its Extended JSON; for a
// collection line it returns (nil, nil) with d.cur set; at the trailer it
// checks everything and returns io.EOF.
func (d *decoder) next() (doc []byte, err error) {
	line, err := d.readLine()
	if errors.Is(err, io.EOF) {
		return nil, corrupt(d.lineNo+1, "truncated: the archive ends without its trailer")
	}
	if err != nil {
		return nil, err
	}
	if d.trailer != nil {
		return nil, corrupt(d.lineNo, "data after the trailer")
	}
	if d.lineNo == 1 {
		return nil, d.readHeader(line)
	}
	if bytes.HasPrefix(line, docPrefix) && bytes.HasSuffix(line, []byte("}")) {
		if d.cur == "" {
			return nil, corrupt(d.lineNo, "a document before any collection line")
		}
		d.hash(line)
		d.counts[d.cur]++
		d.docs++
		return line[len(docPrefix) : len(line)-1], nil
	}
	var l struct {
		Collection *string  `json:"collection"`
		Trailer    *Trailer `json:"trailer"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return nil, corrupt(d.lineNo, "%v", err)
	}
	switch {
	case l.Collection != nil:
		name := *l.Collection
		if !collectionName(name) || Excluded(name) {
			return nil, corrupt(d.lineNo, "collection name %q is not one a backup writes", name)
		}
		if _, dup := d.counts[name]; dup {
			return nil, corrupt(d.lineNo, "collection %s appears twice", name)
		}
		d.hash(line)
		d.counts[name] = 0
		d.order = append(d.order, name)
		d.cur = name
		return nil, nil
	case l.Trailer != nil:
		if err := d.checkTrailer(*l.Trailer); err != nil {
			return nil, err
		}
		d.trailer = l.Trailer
		// Nothing may follow, not even another gzip member (the reader
		// runs on into it).
		if _, err := d.readLine(); !errors.Is(err, io.EOF) {
			if err == nil {
				err = corrupt(d.lineNo, "data after the trailer")
			}
			return nil, err
		}
		return nil, io.EOF
	}
	return nil, corrupt(d.lineNo, "unknown line kind")
}

func (d *decoder) hash(line []byte) {
	d.sum.Write(line)
	d.sum.Write([]byte{'\n'})
}

func (d *decoder) readHeader(line []byte) error {
	var l struct {
		Header *Header `json:"header"`
	}
	if err := json.Unmarshal(line, &l); err != nil || l.Header == nil {
		return corrupt(1, "no archive header")
	}
	h := *l.Header
	switch {
	case h.Format != FormatName:
		return corrupt(1, "format %q, want %q", h.Format, FormatName)
	case h.Version < 1:
		return corrupt(1, "format version %d", h.Version)
	case h.Version > FormatVersion:
		return fmt.Errorf("%w: format version %d is newer than this campus reads (%d); restore it with a newer campus",
			ErrCorrupt, h.Version, FormatVersion)
	case h.SchemaVersion > store.SchemaVersion:
		return fmt.Errorf("%w: the database in it has schema version %d, newer than this campus knows (%d); restore it with a newer campus",
			ErrCorrupt, h.SchemaVersion, store.SchemaVersion)
	case h.SchemaVersion < 0:
		return corrupt(1, "schema version %d", h.SchemaVersion)
	}
	t, err := h.TenantRecord()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := t.Validate(); err != nil {
		return corrupt(1, "tenant record: %v", err)
	}
	d.header, d.tenant = h, t
	d.hash(line)
	return nil
}

func (d *decoder) checkTrailer(t Trailer) error {
	if got := hex.EncodeToString(d.sum.Sum(nil)); got != t.SHA256 {
		return corrupt(d.lineNo, "checksum mismatch: the archive was altered or damaged (SHA-256 %s, trailer says %s)", got, t.SHA256)
	}
	if t.Documents != d.docs || len(t.Collections) != len(d.counts) {
		return corrupt(d.lineNo, "the trailer counts %d documents in %d collections, the archive holds %d in %d",
			t.Documents, len(t.Collections), d.docs, len(d.counts))
	}
	for name, n := range d.counts {
		if t.Collections[name] != n {
			return corrupt(d.lineNo, "the trailer counts %d documents in %s, the archive holds %d", t.Collections[name], name, n)
		}
	}
	return nil
}

func (d *decoder) summary() Summary {
	s := Summary{Header: d.header, Tenant: d.tenant, Collections: d.order}
	if d.trailer != nil {
		s.Trailer = *d.trailer
	}
	return s
}

// Verify reads a whole archive and checks its header, the kind of every
// line, the collection names, the meta documents (no tenant-ID stamp), the
// counts and the checksum, writing nothing anywhere. Errors about the
// content wrap ErrCorrupt. The other documents are parsed by Load as they
// are written (the checksum already says they are what Dump wrote; a
// crafted archive with a valid checksum and a malformed document fails
// there, and the caller undoes the restore).
func Verify(r io.Reader) (Summary, error) {
	d, err := newDecoder(r)
	if err != nil {
		return Summary{}, err
	}
	for {
		doc, err := d.next()
		if errors.Is(err, io.EOF) {
			return d.summary(), nil
		}
		if err != nil {
			return Summary{}, err
		}
		if doc != nil && d.cur == "meta" {
			if err := checkDoc(d.cur, doc); err != nil {
				return Summary{}, corrupt(d.lineNo, "%v", err)
			}
		}
	}
}

// ReadHeader reads and checks an archive's first line only: an archive of
// this format (not necessarily whole: Verify reads it all) and the tenant
// it holds.
func ReadHeader(r io.Reader) (Header, registry.Tenant, error) {
	d, err := newDecoder(r)
	if err != nil {
		return Header{}, registry.Tenant{}, err
	}
	line, err := d.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Header{}, registry.Tenant{}, corrupt(1, "empty archive")
		}
		return Header{}, registry.Tenant{}, err
	}
	if err := d.readHeader(line); err != nil {
		return Header{}, registry.Tenant{}, err
	}
	return d.header, d.tenant, nil
}
