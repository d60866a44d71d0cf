package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/campus-saas/campus/store"
)

// A confirmed import runs in the background (store.StartImport): a
// 100,000-row import takes ~30 s under load, as long as the proxy waits
// for an answer. The confirmation answers at once with 303 to the
// operation's progress page, which refreshes itself until the import has
// committed or rolled back and then shows the result or what went wrong.
// The import is the store's operation (all or nothing, recovered at the
// next start if this process dies); its writes belong to the Store's life
// (Close drains them for a while), not to the request.
//
// importJobs remembers the imports this app started, by operation number
// (their progress and result while the app runs; after a restart the page
// reads the operation record) and by the plan's fingerprint they
// confirmed: a second confirmation of the same plan (double click, reload
// of the POST) waits for the first to start and is sent to its progress
// page instead of importing again.

// importJobsKept is how many started imports are remembered.
const importJobsKept = 64

// importRefreshSeconds is the progress page's refresh period.
const importRefreshSeconds = 2

func importProgressURL(op int64) string {
	return fmt.Sprintf("/admin/students/import/%d/progress/", op)
}

type importJobs struct {
	mu     sync.Mutex
	byOp   map[int64]*importJob
	byPlan map[string]*importJob
	order  []*importJob // oldest first
}

type importJob struct {
	plan    string
	mode    store.ImportMode
	started chan struct{} // closed once run is set (nil: it did not start)
	run     *store.ImportRun
}

func newImportJobs() *importJobs {
	return &importJobs{byOp: map[int64]*importJob{}, byPlan: map[string]*importJob{}}
}

// claim returns the job of plan, and whether the caller is the first to
// confirm it: the first must call started exactly once.
func (j *importJobs) claim(plan string, mode store.ImportMode) (*importJob, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if job := j.byPlan[plan]; job != nil {
		return job, false
	}
	job := &importJob{plan: plan, mode: mode, started: make(chan struct{})}
	j.byPlan[plan] = job
	return job, true
}

// startedAs records what came of a claimed confirmation: run, or nil when
// nothing was started (the claim is dropped: the plan may be confirmed
// again).
func (j *importJobs) startedAs(job *importJob, run *store.ImportRun) {
	j.mu.Lock()
	defer j.mu.Unlock()
	job.run = run
	close(job.started)
	if run == nil {
		delete(j.byPlan, job.plan)
		return
	}
	j.byOp[run.Op] = job
	j.order = append(j.order, job)
	for i := 0; len(j.order) > importJobsKept && i < len(j.order); {
		old := j.order[i]
		select {
		case <-old.run.Finished():
			delete(j.byOp, old.run.Op)
			delete(j.byPlan, old.plan)
			j.order = append(j.order[:i], j.order[i+1:]...)
		default:
			i++ // still running: kept
		}
	}
}

func (j *importJobs) get(op int64) *importJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.byOp[op]
}

// confirmOnce lets one confirmation of plan start an import: it reports
// the job to start (claimed; the caller calls startedAs), or the
// operation an earlier confirmation of the same plan started, whose
// progress page is the answer (0 with a nil job only when ctx ended).
func (j *importJobs) confirmOnce(ctx context.Context, plan string, mode store.ImportMode) (*importJob, int64) {
	for {
		job, first := j.claim(plan, mode)
		if first {
			return job, 0
		}
		select {
		case <-job.started:
		case <-ctx.Done():
			return nil, 0
		}
		if job.run != nil {
			return nil, job.run.Op
		}
		// The first did not start (stale, refused): this one tries.
	}
}

// startImport starts plan in the background, answers with its progress
// page, and hands the import gate's slot of user over to the import: it
// is left when the import ends. It reports whether it answered; if not,
// nothing was started and err says why.
func (s *server) startImport(w http.ResponseWriter, r *http.Request, job *importJob, plan store.ImportPlan, user string, rows int) (bool, error) {
	run, err := s.store.StartImport(r.Context(), plan, actor(r))
	s.jobs.startedAs(job, run)
	if err != nil {
		return false, err
	}
	if s.importStarted != nil {
		s.importStarted(run)
	}
	s.log.Info("import started", "request_id", stateOf(r).id, "op", run.Op, "rows", run.Total, "mode", string(job.mode))
	go func() {
		<-run.Finished()
		s.imports.leave(user, rows)
		res, err := run.Result()
		if err != nil {
			s.log.Error("import failed: nothing imported", "op", run.Op, "err", err)
			return
		}
		s.log.Info("import committed", "op", run.Op, "added", res.Added, "updated", res.Updated)
		s.refreshStudentsGauge(context.Background(), true)
	}()
	http.Redirect(w, r, importProgressURL(run.Op), http.StatusSeeOther)
	return true, nil
}

type importProgressData struct {
	Op         int64
	Running    bool
	Elsewhere  bool // running, not in this app (the command line, another instance)
	Done       int
	Total      int
	Percent    int
	Username   string
	Imported   string // the summary, once committed
	Failure    string // why nothing was imported
	RolledBack string // what a roll-back undid (history entry)
	Retry      bool   // offer to upload the file again
}

func (s *server) handleImportProgress(w http.ResponseWriter, r *http.Request) {
	op, err := strconv.ParseInt(r.PathValue("op"), 10, 64)
	if err != nil || op <= 0 {
		s.handleAdminNotFound(w, r)
		return
	}
	d := importProgressData{Op: op}
	if job := s.jobs.get(op); job != nil {
		run := job.run
		d.Done, d.Total = run.Done(), run.Total
		select {
		case <-run.Finished():
			res, err := run.Result()
			if err == nil {
				d.Imported = importedText(s.locale(r), job.mode, res)
			} else {
				d.Failure, d.Retry = importFailure(err, op)
			}
		default:
			d.Running = true
		}
	} else {
		info, err := s.store.Operation(r.Context(), op)
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && !info.Import:
			s.handleAdminNotFound(w, r)
			return
		case err != nil:
			s.serverError(w, r, fmt.Errorf("read import %d: %w", op, err))
			return
		}
		d.Username, d.Total = info.Username, info.Added+info.Updated
		switch info.State {
		case store.OpCommitted:
			mode := store.ImportAdd
			if info.Updated > 0 {
				mode = store.ImportUpdate
			}
			d.Imported = importedText(s.locale(r), mode, store.ImportResult{Added: info.Added, Updated: info.Updated})
		case store.OpRolledBack:
			d.Failure = "The import was rolled back: nothing of it was imported."
			d.RolledBack, d.Retry = info.RolledBack, true
		default:
			d.Running, d.Elsewhere = true, true
		}
	}
	if d.Total > 0 {
		d.Percent = d.Done * 100 / d.Total
	}
	title := s.tr(r, "Import %d", op)
	pg := &page{
		Title:  title,
		Admin:  true,
		Crumbs: crumbs(title, studentsCrumb, crumb{Label: "Import", URL: "/admin/students/import/"}),
		Data:   d,
	}
	if d.Running {
		pg.Refresh = importRefreshSeconds
	}
	s.render(w, r, http.StatusOK, "admin_import_progress", pg)
}

// importFailure words why a background import did not import, and
// whether uploading the file again may help.
func importFailure(err error, op int64) (string, bool) {
	switch {
	case store.IsStorageFull(err):
		return "Nothing was imported: the disk that holds the school's data is full. " +
			"Please tell whoever runs this site; once they have freed space, upload the file again.", true
	case errors.Is(err, store.ErrImportStale), errors.Is(err, store.ErrDuplicateRegNo):
		return "Someone changed the students while the import ran. Nothing was imported. " +
			"Upload the file again to check a fresh preview.", true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "The import was stopped before it finished (the site was restarting, or it took too long). " +
			"Nothing was imported.", true
	}
	return "The import failed and nothing was imported. Please try again; if it fails again, " +
		"tell whoever runs this site (import %d).", true // the page fills in op
}
