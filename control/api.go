package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/backup"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// School is a school as the API shows it: its registry record and where
// it is reached. Never anything of its database (students, users).
type School struct {
	registry.Tenant
	URL string `json:"url"`
}

// SchoolDetail is the show endpoint's answer.
type SchoolDetail struct {
	School
	Instances []registry.Instance `json:"instances"`
	Stats     SchoolStats         `json:"stats"`
}

// SchoolList is one page of schools.
type SchoolList struct {
	Schools []SchoolSummary `json:"schools"`
	Total   int             `json:"total"`          // schools matching the filter
	Next    string          `json:"next,omitempty"` // the "after" of the next page
}

// SchoolSummary is one row of the list.
type SchoolSummary struct {
	School
	Instances int `json:"instances"`
	Healthy   int `json:"healthy_instances"`
}

// Created is the create endpoint's answer.
type Created struct {
	School School `json:"school"`
	// InviteURL is the first superuser's one-time set-password link,
	// shown only in this answer (the school keeps its hash).
	InviteURL     string    `json:"invite_url,omitempty"`
	InviteExpires time.Time `json:"invite_expires,omitzero"`
	// Note explains a replayed create's missing invite link.
	Note string `json:"note,omitempty"`
}

// CreateRequest is the create endpoint's body.
type CreateRequest struct {
	Name        string   `json:"name"`
	Hosts       []string `json:"hosts"`
	DisplayName string   `json:"display_name,omitempty"`
	// Superuser and Email are the first superuser's, who chooses a
	// password through the invite link.
	Superuser string `json:"superuser"`
	Email     string `json:"email"`
}

// MaxPageSize bounds the list's limit.
const MaxPageSize = 1000

func (s *Server) school(t registry.Tenant) School {
	return School{Tenant: t, URL: s.Public.TenantURL(t.PrimaryHost, "/")}
}

// Page is one page of a snapshot's schools, filtered by state, after
// the name after.
func (s *Server) page(snap registry.Snapshot, state registry.State, after string, limit int) SchoolList {
	if limit <= 0 || limit > MaxPageSize {
		limit = 100
	}
	inst := map[string][2]int{}
	for _, in := range snap.Instances {
		c := inst[in.Tenant]
		c[0]++
		if in.Healthy {
			c[1]++
		}
		inst[in.Tenant] = c
	}
	out := SchoolList{Schools: []SchoolSummary{}}
	for _, t := range snap.Tenants { // sorted by name
		if state != "" && t.State != state {
			continue
		}
		out.Total++
		if t.Name <= after {
			continue
		}
		if len(out.Schools) == limit {
			if out.Next == "" {
				out.Next = out.Schools[len(out.Schools)-1].Name
			}
			continue
		}
		c := inst[t.Name]
		out.Schools = append(out.Schools, SchoolSummary{School: s.school(t), Instances: c[0], Healthy: c[1]})
	}
	return out
}

func (s *Server) listSchools(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := registry.State(q.Get("state"))
	if state != "" && !state.Valid() {
		writeError(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("state %q is not active, suspended, creating or deleted", state))
		return
	}
	limit, err := intParam(q.Get("limit"), 100)
	if err != nil || limit < 1 || limit > MaxPageSize {
		writeError(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("limit must be 1 to %d", MaxPageSize))
		return
	}
	snap, err := s.Registry.Snapshot(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.page(snap, state, q.Get("after"), limit))
}

func intParam(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}

// detail is the show endpoint's answer for name.
func (s *Server) detail(ctx context.Context, name string) (SchoolDetail, error) {
	t, err := s.Manager.Lookup(ctx, name)
	if err != nil {
		return SchoolDetail{}, err
	}
	d := SchoolDetail{School: s.school(t), Instances: []registry.Instance{}, Stats: s.Stats.School(name)}
	snap, err := s.Registry.Snapshot(ctx)
	if err != nil {
		return d, err
	}
	for _, in := range snap.Instances {
		if in.Tenant == name {
			d.Instances = append(d.Instances, in)
		}
	}
	return d, nil
}

func (s *Server) showSchool(w http.ResponseWriter, r *http.Request) {
	d, err := s.detail(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) createSchool(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than 64 KiB")
		return
	}
	var req CreateRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", err.Error())
		return
	}
	callOf(r).target = req.Name
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		code, v := s.create(r.Context(), req)
		s.answer(w, r, code, v)
		return
	}
	if len(key) > 200 {
		writeError(w, http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key is at most 200 characters")
		return
	}
	c := callOf(r)
	sum := sha256.Sum256(body)
	c.idemKey, c.detail = key, requestHash(sum)
	res, replay, err := s.idem.do(r.Context(), c.op.ID+"\x00"+key, body, func() idemResult {
		ctx := context.WithoutCancel(r.Context())
		if res, ok := s.earlierCreate(ctx, c.op.ID, key, sum); ok {
			return res
		}
		code, v := s.create(ctx, req)
		b, _ := json.Marshal(v)
		res := idemResult{code: code, body: b, detail: detailOf(v)}
		if cr, ok := v.(Created); ok {
			res.schoolID = cr.School.ID
		}
		return res
	})
	if err != nil {
		c.idemKey, c.detail = "", err.Error()
		writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", err.Error())
		return
	}
	if replay || res.replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if res.detail != "" {
		c.detail, c.idemKey = res.detail, ""
	}
	c.schoolID = res.schoolID
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.code)
	w.Write(res.body)
}

func requestHash(sum [32]byte) string { return "request sha256 " + hex.EncodeToString(sum[:]) }

// earlierCreate finds, in the audit trail, a create of this token with
// this Idempotency-Key that this server no longer remembers (it
// restarted, or another control server answered): the same body gets the
// school again (201, without the invite link, which was shown once and is
// not kept); another body is refused.
func (s *Server) earlierCreate(ctx context.Context, tokenID, key string, sum [32]byte) (idemResult, bool) {
	entries, err := s.Registry.Audit(ctx, registry.AuditQuery{TokenID: tokenID, IdempotencyKey: key, Limit: 10})
	if err != nil {
		s.logger().Warn("control: read the audit trail for an Idempotency-Key", "err", err)
		return idemResult{}, false
	}
	for _, e := range entries {
		if e.Action != "schools.create" || e.Outcome != registry.OutcomeOK || e.SchoolID == "" {
			continue
		}
		if e.Detail != requestHash(sum) {
			b, _ := json.Marshal(apiError{Code: "idempotency_key_reused", Error: errKeyReused.Error()})
			return idemResult{code: http.StatusUnprocessableEntity, body: b, detail: errKeyReused.Error()}, true
		}
		t, err := s.Registry.Tenant(ctx, e.Target)
		if err != nil || t.ID != e.SchoolID {
			msg := fmt.Sprintf("this Idempotency-Key created school %q (ID %s) at %s, which no longer exists", e.Target, e.SchoolID, e.At.Format(time.RFC3339))
			b, _ := json.Marshal(apiError{Code: "idempotency_key_reused", Error: msg})
			return idemResult{code: http.StatusUnprocessableEntity, body: b, detail: msg}, true
		}
		b, _ := json.Marshal(Created{School: s.school(t), Note: "created by an earlier request with this Idempotency-Key; its invite link was shown then " +
			"and is not kept (campus manage " + t.Name + " resetlink USERNAME issues another)"})
		return idemResult{code: http.StatusCreated, body: b, schoolID: t.ID, replayed: true}, true
	}
	return idemResult{}, false
}

// create runs a create and returns its answer: a Created or an apiError.
func (s *Server) create(ctx context.Context, req CreateRequest) (int, any) {
	if req.Superuser == "" {
		return http.StatusUnprocessableEntity, apiError{Code: "invalid", Error: "superuser (the first superuser's username) is required", Field: "superuser"}
	}
	c, err := s.Manager.Create(ctx, tenancy.NewTenant{Name: req.Name, Hosts: req.Hosts, DisplayName: req.DisplayName,
		Superuser: req.Superuser, SuperuserEmail: req.Email, Invite: true})
	if err != nil {
		code, e := classify(err)
		if code >= 500 {
			s.logger().Error("control: create school", "school", req.Name, "err", err)
		}
		return code, e
	}
	return http.StatusCreated, Created{School: s.school(c.Tenant),
		InviteURL: s.Public.TenantURL(c.Tenant.PrimaryHost, app.ResetPath(c.Invite)), InviteExpires: c.InviteExpires}
}

func detailOf(v any) string {
	if e, ok := v.(apiError); ok {
		return e.Error
	}
	return ""
}

// answer writes v (an apiError's detail goes to the audit trail).
func (s *Server) answer(w http.ResponseWriter, r *http.Request, code int, v any) {
	callOf(r).detail = detailOf(v)
	writeJSON(w, code, v)
}

func (s *Server) setState(state registry.State) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := s.Manager.SetState(r.Context(), r.PathValue("name"), state)
		s.reply(w, r, t, err)
	}
}

func (s *Server) suspendSchool(w http.ResponseWriter, r *http.Request) {
	s.setState(registry.StateSuspended)(w, r)
}

func (s *Server) resumeSchool(w http.ResponseWriter, r *http.Request) {
	s.setState(registry.StateActive)(w, r)
}

// reply answers a change with the school as it is now, or the error.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, t registry.Tenant, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.school(t))
}

func (s *Server) deleteSchool(w http.ResponseWriter, r *http.Request) {
	retention := s.retention()
	if v := r.URL.Query().Get("retention"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("retention %q is not a duration such as 720h", v))
			return
		}
		retention = d
	}
	t, err := s.Manager.Lookup(r.Context(), r.PathValue("name"))
	if err == nil {
		t, err = s.Manager.Delete(r.Context(), t, retention, false)
	}
	s.reply(w, r, t, err)
}

func (s *Server) restoreSchool(w http.ResponseWriter, r *http.Request) {
	t, _, err := s.Manager.Restore(r.Context(), r.PathValue("name"))
	s.reply(w, r, t, err)
}

func (s *Server) purgeSchool(w http.ResponseWriter, r *http.Request) {
	t, err := s.Manager.Lookup(r.Context(), r.PathValue("name"))
	if err == nil {
		err = tenancy.CanPurge(t)
		if err != nil {
			err = &tenancy.WrongStateError{Op: "purge", Tenant: t}
		}
	}
	if err == nil {
		err = s.Manager.Purge(r.Context(), t)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SetRequest is the set endpoint's body: the fields given are changed
// ("" resets one to the supervisor's default).
type SetRequest struct {
	IdleTimeout *string `json:"idle_timeout"`
	Memory      *string `json:"memory"`
}

func (s *Server) setSchool(w http.ResponseWriter, r *http.Request) {
	var req SetRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", err.Error())
		return
	}
	if req.IdleTimeout == nil && req.Memory == nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", "give idle_timeout, memory or both")
		return
	}
	name := r.PathValue("name")
	// Both are checked before either is written.
	if req.IdleTimeout != nil {
		if _, err := registry.ParseIdleTimeout(*req.IdleTimeout); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if req.Memory != nil {
		if _, err := registry.ParseMemory(*req.Memory); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	t, err := s.Manager.Lookup(r.Context(), name)
	if err == nil && req.IdleTimeout != nil {
		t, err = s.Registry.SetIdleTimeout(r.Context(), name, *req.IdleTimeout)
	}
	if err == nil && req.Memory != nil {
		t, err = s.Registry.SetMemory(r.Context(), name, *req.Memory)
	}
	s.reply(w, r, t, err)
}

// HostRequest is the host add endpoint's body.
type HostRequest struct {
	Host string `json:"host"`
}

func (s *Server) addHost(w http.ResponseWriter, r *http.Request) {
	var req HostRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", err.Error())
		return
	}
	t, err := s.Manager.Lookup(r.Context(), r.PathValue("name"))
	if err == nil {
		t, err = s.Registry.AddHost(r.Context(), t.Name, req.Host)
	}
	s.reply(w, r, t, err)
}

func (s *Server) removeHost(w http.ResponseWriter, r *http.Request) {
	t, err := s.Manager.Lookup(r.Context(), r.PathValue("name"))
	if err == nil {
		t, err = s.Registry.RemoveHost(r.Context(), t.Name, r.PathValue("host"))
	}
	s.reply(w, r, t, err)
}

// downloadBackup streams the school's archive. An error after the first
// byte cannot change the status any more: the archive then lacks its
// trailer, which every restore refuses, and the audit entry says failed.
func (s *Server) downloadBackup(w http.ResponseWriter, r *http.Request) {
	t, err := s.Manager.Lookup(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lw := &lazyWriter{w: w, start: func() {
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", tenancy.ArchiveName(t.Name, time.Now())))
	}}
	if _, err := s.Manager.Backup(r.Context(), t, lw, tenancy.BackupOptions{}); err != nil {
		if !lw.started {
			s.fail(w, r, err)
			return
		}
		callOf(r).detail = "failed after the archive began: " + err.Error()
		callOf(r).failed = true
		s.logger().Error("control: back up school", "school", t.Name, "err", err)
	}
}

type lazyWriter struct {
	w       io.Writer
	start   func()
	started bool
}

func (l *lazyWriter) Write(b []byte) (int, error) {
	if !l.started {
		l.started = true
		l.start()
	}
	return l.w.Write(b)
}

// restoreUpload restores an uploaded archive (the request body) with the
// verification and the all-or-nothing saga of `campus tenant restore`:
// into its own school (same name and ID), or with ?as=NAME as a new one.
func (s *Server) restoreUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := tenancy.RestoreOptions{As: q.Get("as"), Hosts: q["host"], DisplayName: q.Get("display_name")}
	callOf(r).target = o.As
	f, err := os.CreateTemp("", "campus-restore-*.campus.gz")
	if err != nil {
		s.fail(w, r, fmt.Errorf("keep the upload: %w", err))
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, http.MaxBytesReader(w, r.Body, s.maxUpload())); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the archive is larger than %d bytes; restore it with campus tenant restore", s.maxUpload()))
			return
		}
		writeError(w, http.StatusBadRequest, "upload", "the upload ended early: "+err.Error()+"; nothing was restored")
		return
	}
	if err := f.Sync(); err != nil {
		s.fail(w, r, fmt.Errorf("keep the upload: %w", err))
		return
	}
	res, err := s.Manager.RestoreArchive(r.Context(), f.Name(), o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	callOf(r).target = res.Tenant.Name
	writeJSON(w, http.StatusCreated, map[string]any{"school": s.school(res.Tenant), "source_id": res.Source.ID,
		"documents": res.Loaded.Trailer.Documents, "schema_from": res.From, "schema_to": res.To})
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), 100)
	if err != nil || limit < 1 || limit > registry.MaxAuditLimit {
		writeError(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("limit must be 1 to %d", registry.MaxAuditLimit))
		return
	}
	entries, err := s.Registry.Audit(r.Context(), registry.AuditQuery{Target: q.Get("school"), Before: q.Get("before"), Limit: limit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"entries": entries}
	if entries == nil {
		out["entries"] = []registry.AuditEntry{}
	}
	if len(entries) == limit {
		out["next"] = entries[len(entries)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// apiError is every error answer's body.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
}

// classify maps an error of tenancy or the registry to a status and a
// body.
func classify(err error) (int, apiError) {
	var (
		unknown   *tenancy.UnknownTenantError
		nameTaken *tenancy.NameTakenError
		hostTaken *tenancy.HostTakenError
		regHost   *registry.HostTakenError
		wrong     *tenancy.WrongStateError
		notEmpty  *tenancy.DatabaseNotEmptyError
		refused   *tenancy.RestoreRefusedError
		target    *tenancy.ArchiveTargetError
		superuser *tenancy.SuperuserError
		invalid   *registry.InvalidError
		undone    *tenancy.UndoneError
	)
	e := apiError{Error: err.Error()}
	switch {
	case errors.As(err, &undone):
		e.Code = "undone"
		return http.StatusInternalServerError, e
	case errors.As(err, &unknown), errors.Is(err, registry.ErrNotFound):
		e.Code = "not_found"
		return http.StatusNotFound, e
	case errors.As(err, &nameTaken), errors.Is(err, registry.ErrExists):
		e.Code = "name_taken"
		return http.StatusConflict, e
	case errors.As(err, &hostTaken), errors.As(err, &regHost):
		e.Code = "host_taken"
		return http.StatusConflict, e
	case errors.As(err, &wrong), errors.Is(err, registry.ErrWrongState):
		e.Code = "wrong_state"
		return http.StatusConflict, e
	case errors.As(err, &notEmpty), errors.As(err, &refused), errors.As(err, &target):
		e.Code = "refused"
		return http.StatusConflict, e
	case errors.As(err, &superuser):
		e.Code = "invalid"
		if fe, ok := superuser.Err.(store.FieldErrors); ok {
			fields := slices.Sorted(maps.Keys(fe))
			if len(fields) > 0 {
				e.Field = fields[0]
			}
		}
		return http.StatusUnprocessableEntity, e
	case errors.As(err, &invalid):
		e.Code, e.Field = "invalid", invalid.Field
		return http.StatusUnprocessableEntity, e
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, backup.ErrCorrupt):
		e.Code = "invalid"
		return http.StatusUnprocessableEntity, e
	case errors.Is(err, registry.ErrConflict):
		e.Code = "conflict"
		return http.StatusConflict, e
	}
	e.Code = "failed"
	return http.StatusInternalServerError, e
}

// fail answers err (classify) and notes it for the audit trail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, e := classify(err)
	if code >= 500 {
		s.logger().Error("control API", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.answer(w, r, code, e)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, apiError{Error: msg, Code: kind})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read the body: %w", err)
	}
	return decodeStrict(b, v)
}

// decodeStrict decodes one JSON object, refusing unknown fields (a typo
// must not be ignored silently).
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body is not the JSON object expected: %w", err)
	}
	if dec.More() {
		return errors.New("the body holds more than one JSON value")
	}
	return nil
}
