package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The admin list's "select all N matching" (Django's select_across): a
// bulk action applies to every student the list shows with its search
// (and filters), not only the page. The selection is read again when the
// action runs, from the same options, so it is what the list shows then.

// ErrTooManySelected is returned by MatchingIDs when more students match
// than the limit.
var ErrTooManySelected = errors.New("too many students selected")

// MatchingIDs returns the IDs (ascending) of the students a list with o's
// search and filters shows (o.Sort and the page do not matter), or, when more than
// limit match, their number and an error wrapping ErrTooManySelected.
func (s *Store) MatchingIDs(ctx context.Context, o ListOptions, limit int) ([]int64, int64, error) {
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return nil, 0, fmt.Errorf("select matching students: %w", err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		return s.rm.snap.matchingIDs(o, limit)
	}
	filter := append(searchFilter(o.Query), filterSpec(o)...)
	total, err := s.countStudents(ctx, filter, nil)
	if err != nil {
		return nil, 0, timeoutError("select matching students: count", err)
	}
	if total > int64(limit) {
		return nil, total, tooMany(total, limit)
	}
	v, err := s.opsView(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("select matching students: %w", err)
	}
	cur, err := s.col(colStudents).Find(ctx, v.studentFilter(filter), options.Find().SetSort(d("_id", 1)))
	if err != nil {
		return nil, 0, timeoutError("select matching students", err)
	}
	var docs []markedStudent
	if err := cur.All(ctx, &docs); err != nil {
		return nil, 0, timeoutError("select matching students", err)
	}
	ids := make([]int64, 0, len(docs))
	for _, m := range docs {
		if v.resolve(&m.Student, m.Marks) {
			ids = append(ids, m.ID)
		}
	}
	return ids, int64(len(ids)), nil
}

func tooMany(total int64, limit int) error {
	return fmt.Errorf("select matching students: %d match, at most %d at once: %w", total, limit, ErrTooManySelected)
}

// matchingIDs is MatchingIDs on the read model.
func (sn *snapshot) matchingIDs(o ListOptions, limit int) ([]int64, int64, error) {
	set, total := sn.selection(searchWords(o.Query), o)
	if total < 0 { // everyone
		n := sn.count()
		if n > limit {
			return nil, int64(n), tooMany(int64(n), limit)
		}
		return append([]int64(nil), sn.ids...), int64(n), nil
	}
	if total > int64(limit) {
		return nil, total, tooMany(total, limit)
	}
	ids := make([]int64, 0, total)
	for pos := range sn.ids {
		if set[pos/64]&(1<<(pos%64)) != 0 {
			ids = append(ids, sn.ids[pos])
		}
	}
	return ids, total, nil
}

// idSet is ids as a set (nil for nil): ExportOptions.IDs, checked in Go
// rather than by the database (FerretDB v1 would not use an index for a
// large $in, and SQLite bounds the variables of one statement).
func idSet(ids []int64) map[int64]bool {
	if ids == nil {
		return nil
	}
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// ListStudentsWithFacets is ListStudents and StudentFacets together: the
// admin list with its sidebar. On the read model it is one look at the
// model (one catch-up with the journal, a database read, instead of two).
func (s *Store) ListStudentsWithFacets(ctx context.Context, o ListOptions) (Page, Facets, error) {
	if !s.useModel(ctx) {
		pg, err := s.ListStudents(ctx, o)
		if err != nil {
			return pg, Facets{}, err
		}
		f, err := s.studentFacets(ctx, o)
		return pg, f, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	perPage := min(max(o.PerPage, 0), MaxPerPage)
	if perPage < 1 {
		perPage = DefaultPerPage
	}
	if err := s.model(ctx); err != nil {
		return Page{}, Facets{}, fmt.Errorf("list students: %w", err)
	}
	s.rm.mu.RLock()
	defer s.rm.mu.RUnlock()
	return s.rm.snap.page(o, perPage), s.rm.snap.facets(o), nil
}
