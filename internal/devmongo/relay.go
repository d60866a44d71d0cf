package devmongo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// The relay is the server's TCP listener. FerretDB itself listens on a
// Unix socket in a private folder, and every client connection is copied
// to it byte for byte, with one thing looked at: the name of each
// command, to keep `dropDatabase` and the id indexer (idindex.go) apart.
//
// Why: the indexer opens a database file with a connection of its own.
// FerretDB drops a database by closing its connections and removing the
// file. If the indexer's connection is open at that moment, the file's
// -wal and -shm outlive the file, and a database created next under the
// same name (`tenant purge`, then `tenant create` or `tenant restore`)
// opens them and replays another database's pages into itself: "disk
// I/O error", "database disk image is malformed". So the indexer holds
// the gate's read lock while it has a file open, and a `dropDatabase`
// holds its write lock from before FerretDB sees it until FerretDB has
// answered (TestDropAndCreateWhileIndexing).

// Wire protocol op codes (MongoDB's OP_MSG and the legacy OP_QUERY, which
// drivers may still use for their first handshake).
const (
	opQuery = 2004
	opMsg   = 2013

	// maxMessage is MongoDB's limit on a message; a larger length is a
	// broken or hostile client.
	maxMessage = 48_000_000
	// commandPeek is enough of a message to read its command's name.
	commandPeek = 128
)

var dropDatabase = []byte("dropDatabase")

type relay struct {
	ln       net.Listener
	upstream string // FerretDB's Unix socket
	gate     *sync.RWMutex
	logger   *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// serve accepts connections until the listener is closed; a failed accept
// (out of file descriptors) is retried after a pause.
func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			r.logger.Warn("embedded MongoDB: accept a client", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		up, err := net.Dial("unix", r.upstream)
		if err != nil {
			r.logger.Warn("embedded MongoDB: reach the server", "err", err)
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			r.pipe(c, up)
			r.mu.Lock()
			delete(r.conns, c)
			delete(r.conns, up)
			r.mu.Unlock()
		}()
	}
}

// close stops accepting, ends every relayed connection and waits for them.
func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// pipe copies one client connection both ways until either side ends.
func (r *relay) pipe(client, up net.Conn) {
	// dropping is set (under the gate's write lock) while a dropDatabase
	// this connection sent waits for its answer.
	dropping := make(chan struct{}, 1)
	answered := make(chan struct{}, 1)
	release := func() {
		select {
		case <-dropping:
			r.gate.Unlock()
			select {
			case answered <- struct{}{}:
			default:
			}
		default:
		}
	}
	defer release()

	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				// FerretDB answers a connection's messages in order, so the
				// first bytes read after a dropDatabase was sent are its
				// answer: the file is gone by then. Whether one was sent is
				// looked at before these bytes are passed on: the client
				// sends nothing new before it has them.
				isAnswer := len(dropping) > 0
				_, werr := client.Write(buf[:n])
				if isAnswer {
					release()
				}
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		client.Close()
	}()

	br := bufio.NewReaderSize(client, 32<<10)
	buf := make([]byte, 32<<10)
	for {
		hdr, err := br.Peek(16)
		if err != nil {
			break
		}
		size := int(int32(binary.LittleEndian.Uint32(hdr)))
		if size < 16 || size > maxMessage {
			r.logger.Warn("embedded MongoDB: a client sent a message of a bad length; closing its connection", "length", size)
			break
		}
		head, err := br.Peek(min(size, commandPeek))
		if err != nil {
			break
		}
		drop := isDropDatabase(head)
		if drop {
			r.gate.Lock()
			dropping <- struct{}{}
		}
		// The rest of the message (io.LimitReader: copied through buf,
		// since neither side is a ReaderFrom/WriterTo here).
		if k, err := io.CopyBuffer(up, io.LimitReader(br, int64(size)), buf); err != nil || k < int64(size) {
			if drop {
				release() // FerretDB never had the whole message
			}
			break
		}
	}
	// A client gone while its dropDatabase runs: FerretDB runs it to its
	// end all the same, so the gate waits for the answer (or a bound).
	if len(dropping) > 0 {
		select {
		case <-answered:
		case <-done:
		case <-time.After(dropAnswerWait):
		}
	}
	up.Close()
	<-done
}

// dropAnswerWait bounds how long a dropDatabase whose client has gone
// keeps the gate.
const dropAnswerWait = time.Minute

// isDropDatabase reports whether a message (at least its first
// commandPeek bytes) is a dropDatabase command.
func isDropDatabase(m []byte) bool {
	if len(m) < 16 {
		return false
	}
	var doc []byte
	switch binary.LittleEndian.Uint32(m[12:]) {
	case opMsg:
		// flagBits, then sections; the command is the body (kind 0)
		// section, which drivers send first.
		if len(m) < 21 || m[20] != 0 {
			return false
		}
		doc = m[21:]
	case opQuery:
		// flags, fullCollectionName ("db.$cmd"), numberToSkip,
		// numberToReturn, then the command document.
		i := bytes.IndexByte(m[20:], 0)
		if i < 0 {
			return false
		}
		doc = m[20+i+1:]
		if len(doc) < 8 {
			return false
		}
		doc = doc[8:]
	default:
		return false
	}
	// A BSON document: int32 length, then elements of type byte, name
	// (NUL-terminated) and value; the first element's name is the command.
	if len(doc) < 5 {
		return false
	}
	name := doc[5:]
	i := bytes.IndexByte(name, 0)
	return i >= 0 && bytes.EqualFold(name[:i], dropDatabase)
}
