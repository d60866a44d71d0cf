package store

import "time"

// Busy: a school whose app runs an import or a bulk delete in the
// background (StartImport), or whose database has one running from
// another live process (a CLI import), must not be stopped for being idle
// (issue 20): stopping the app would roll its own operation back. The app
// tells its supervisor through /healthz (app.BusyHeader).

// OperationsRunning returns how many multi-row operations (imports, bulk
// deletes) of this school are running: those of this process, and the
// pending ones of other live writers seen by the last RecoverOperations
// (the app runs it every RecoverInterval) if that pass is recent. It reads
// no database.
func (s *Store) OperationsRunning() int {
	s.opsMu.Lock()
	n := len(s.running)
	s.opsMu.Unlock()
	if at := s.elsewhereAt.Load(); at != 0 && time.Since(time.Unix(0, at)) <= 3*RecoverInterval {
		n += int(s.elsewhere.Load())
	}
	return n
}

// noteElsewhere records the pending operations of other live writers seen
// by a RecoverOperations pass.
func (s *Store) noteElsewhere(n int) {
	s.elsewhere.Store(int64(n))
	s.elsewhereAt.Store(time.Now().UnixNano())
}
