package consultest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// kvJSON is the documented shape of a KV entry in responses.
type kvJSON struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte // base64, or null
	CreateIndex uint64
	ModifyIndex uint64
}

func (e *kvEntry) json(withValue bool) kvJSON {
	j := kvJSON{LockIndex: e.LockIndex, Key: e.Key, Flags: e.Flags, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex}
	if withValue {
		j.Value = append([]byte{}, e.Value...)
	}
	return j
}

// kvTableIndexLocked is the index of the last KV write or delete.
func (s *Server) kvTableIndexLocked() uint64 { return s.kvTable }

// ReapTombstones forgets deleted keys, as Consul's tombstone GC does; a
// prefix whose newest change was a delete then reports a lower index.
func (s *Server) ReapTombstones() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tombstones = map[string]uint64{}
}

func (s *Server) handleKV(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		if q.Has("keys") || q.Has("raw") || q.Has("separator") {
			http.Error(w, "consultest: ?keys, ?raw and ?separator are not implemented", http.StatusBadRequest)
			return
		}
		if q.Has("recurse") {
			s.blocking(w, r, func() (uint64, int, any) { return s.kvListLocked(key) })
			return
		}
		s.blocking(w, r, func() (uint64, int, any) {
			idx := s.kvTableIndexLocked()
			e, ok := s.kv[key]
			if !ok {
				return idx, http.StatusNotFound, nil
			}
			return idx, http.StatusOK, []kvJSON{e.json(true)}
		})
	case http.MethodPut:
		s.kvPut(w, r, key)
	case http.MethodDelete:
		s.kvDelete(w, r, key)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// kvListLocked answers a ?recurse read: the index is the newest change
// under the prefix, tombstones included, or the KV table's index when
// nothing was ever there.
func (s *Server) kvListLocked(prefix string) (uint64, int, any) {
	var idx uint64
	var out []kvJSON
	for k, e := range s.kv {
		if strings.HasPrefix(k, prefix) {
			idx = max(idx, e.ModifyIndex)
			out = append(out, e.json(true))
		}
	}
	for k, i := range s.tombstones {
		if strings.HasPrefix(k, prefix) {
			idx = max(idx, i)
		}
	}
	if idx == 0 {
		idx = s.kvTableIndexLocked()
	}
	if len(out) == 0 {
		return idx, http.StatusNotFound, nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return idx, http.StatusOK, out
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request, key string) {
	if key == "" {
		http.Error(w, "Missing key name", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	if q.Has("acquire") || q.Has("release") {
		http.Error(w, "consultest: sessions are not implemented", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxValue+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxValue {
		http.Error(w, fmt.Sprintf("Request body too large, max size: %d bytes", maxValue), http.StatusRequestEntityTooLarge)
		return
	}
	var flags uint64
	if v := q.Get("flags"); v != "" {
		if flags, err = strconv.ParseUint(v, 10, 64); err != nil {
			http.Error(w, "Invalid flags: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	cas, hasCAS, err := uintParam(q.Get("cas"), q.Has("cas"))
	if err != nil {
		http.Error(w, "Invalid cas index: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.kv[key]
	if hasCAS && !casMatches(old, cas) {
		writeJSON(w, http.StatusOK, false)
		return
	}
	s.setLocked(key, body, flags, s.nextIndexLocked())
	s.notifyLocked()
	writeJSON(w, http.StatusOK, true)
}

// casMatches implements Consul's check-and-set rule: index 0 means "only if
// the key does not exist", any other index must equal the ModifyIndex.
func casMatches(e *kvEntry, index uint64) bool {
	if index == 0 {
		return e == nil
	}
	return e != nil && e.ModifyIndex == index
}

func (s *Server) setLocked(key string, value []byte, flags, idx uint64) *kvEntry {
	e := &kvEntry{Key: key, Value: append([]byte{}, value...), Flags: flags, CreateIndex: idx, ModifyIndex: idx}
	if old := s.kv[key]; old != nil {
		e.CreateIndex = old.CreateIndex
		e.LockIndex = old.LockIndex
	}
	s.kv[key] = e
	delete(s.tombstones, key)
	s.kvTable = idx
	return e
}

func (s *Server) deleteLocked(key string, idx uint64) {
	delete(s.kv, key)
	s.tombstones[key] = idx
	s.kvTable = idx
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	cas, hasCAS, err := uintParam(q.Get("cas"), q.Has("cas"))
	if err != nil {
		http.Error(w, "Invalid cas index: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Has("recurse") {
		var keys []string
		for k := range s.kv {
			if strings.HasPrefix(k, key) {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			idx := s.nextIndexLocked()
			for _, k := range keys {
				s.deleteLocked(k, idx)
			}
			s.notifyLocked()
		}
		writeJSON(w, http.StatusOK, true)
		return
	}
	old := s.kv[key]
	if hasCAS && old != nil && old.ModifyIndex != cas {
		writeJSON(w, http.StatusOK, false)
		return
	}
	if old != nil {
		s.deleteLocked(key, s.nextIndexLocked())
		s.notifyLocked()
	}
	writeJSON(w, http.StatusOK, true)
}

func uintParam(v string, present bool) (uint64, bool, error) {
	if !present {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, true, err
}

// txnOp is one documented /v1/txn operation; only KV is implemented.
type txnOp struct {
	KV      *txnKVOp
	Node    json.RawMessage
	Service json.RawMessage
	Check   json.RawMessage
}

type txnKVOp struct {
	Verb    string
	Key     string
	Value   []byte
	Flags   uint64
	Index   uint64
	Session string
}

type txnResult struct {
	KV *kvJSON `json:"KV,omitempty"`
}

type txnError struct {
	OpIndex int
	What    string
}

type txnResponse struct {
	Results []txnResult
	Errors  []txnError
}

func (s *Server) handleTxn(w http.ResponseWriter, r *http.Request) {
	var ops []txnOp
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<20))
	if err := dec.Decode(&ops); err != nil {
		http.Error(w, "Failed to parse body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(ops) > maxTxnOps {
		http.Error(w, fmt.Sprintf("Transaction contains too many operations (%d > %d)", len(ops), maxTxnOps), http.StatusRequestEntityTooLarge)
		return
	}
	for i, op := range ops {
		if op.KV == nil {
			http.Error(w, fmt.Sprintf("consultest: operation %d: only KV operations are implemented", i), http.StatusBadRequest)
			return
		}
		if len(op.KV.Value) > maxValue {
			http.Error(w, fmt.Sprintf("Value for key %q is too large (%d > %d bytes)", op.KV.Key, len(op.KV.Value), maxValue), http.StatusRequestEntityTooLarge)
			return
		}
		switch op.KV.Verb {
		case "set", "cas", "get", "check-index", "check-not-exists", "delete", "delete-cas":
		default:
			http.Error(w, fmt.Sprintf("consultest: KV verb %q is not implemented", op.KV.Verb), http.StatusBadRequest)
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Apply to an overlay; commit only if every operation succeeded.
	idx := s.index + 1
	type change struct {
		entry   *kvEntry // nil: deleted
		deleted bool
	}
	overlay := map[string]change{}
	get := func(k string) *kvEntry {
		if c, ok := overlay[k]; ok {
			return c.entry
		}
		return s.kv[k]
	}
	set := func(op *txnKVOp) *kvEntry {
		e := &kvEntry{Key: op.Key, Value: append([]byte{}, op.Value...), Flags: op.Flags, CreateIndex: idx, ModifyIndex: idx}
		if old := get(op.Key); old != nil {
			e.CreateIndex = old.CreateIndex
			e.LockIndex = old.LockIndex
		}
		overlay[op.Key] = change{entry: e}
		return e
	}
	var resp txnResponse
	writes := false
	for i, op := range ops {
		kv := op.KV
		var err error
		var result *kvJSON
		cur := get(kv.Key)
		switch kv.Verb {
		case "set":
			j := set(kv).json(false)
			result, writes = &j, true
		case "cas":
			if !casMatches(cur, kv.Index) {
				err = fmt.Errorf("failed to set key %q, index is stale", kv.Key)
				break
			}
			j := set(kv).json(false)
			result, writes = &j, true
		case "get":
			if cur == nil {
				err = fmt.Errorf("key %q doesn't exist", kv.Key)
				break
			}
			j := cur.json(true)
			result = &j
		case "check-index":
			if cur == nil || cur.ModifyIndex != kv.Index {
				var have uint64
				if cur != nil {
					have = cur.ModifyIndex
				}
				err = fmt.Errorf("current modify index %d != %d", have, kv.Index)
				break
			}
			j := cur.json(false)
			result = &j
		case "check-not-exists":
			if cur != nil {
				err = fmt.Errorf("key %q exists", kv.Key)
			}
		case "delete":
			if cur != nil {
				overlay[kv.Key] = change{deleted: true}
				writes = true
			}
		case "delete-cas":
			if cur != nil && cur.ModifyIndex != kv.Index {
				err = fmt.Errorf("failed to delete key %q, index is stale", kv.Key)
				break
			}
			if cur != nil {
				overlay[kv.Key] = change{deleted: true}
				writes = true
			}
		}
		if err != nil {
			resp.Errors = append(resp.Errors, txnError{OpIndex: i, What: err.Error()})
			continue
		}
		if result != nil {
			resp.Results = append(resp.Results, txnResult{KV: result})
		}
	}
	if len(resp.Errors) > 0 {
		resp.Results = nil
		writeQuery(w, s.index, http.StatusConflict, resp)
		return
	}
	if writes {
		s.index = idx
		for k, c := range overlay {
			if c.deleted {
				s.deleteLocked(k, idx)
			} else {
				s.kv[k] = c.entry
				delete(s.tombstones, k)
				s.kvTable = idx
			}
		}
		s.notifyLocked()
	}
	writeQuery(w, s.index, http.StatusOK, resp)
}
