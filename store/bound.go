package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Default deadlines of database work; see Options.QueryTimeout and
// Options.BulkTimeout.
const (
	defaultQueryTimeout = 10 * time.Second
	defaultBulkTimeout  = 10 * time.Minute
)

// ErrTimeout means the database did not answer within the deadline: the
// store's own (Options.QueryTimeout) or the caller's. Callers answer 503,
// not 500: the request was fine, the database too slow.
var ErrTimeout = errors.New("the database did not answer in time")

// bound gives ctx the store's query deadline unless it already has an
// earlier one. The driver sends what is left of the deadline to the server
// as maxTimeMS (FerretDB honours it for find, aggregate and findAndModify,
// so counts too), and the server stops the query there: neither a client
// that left nor a runaway query keeps the database busy.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return withDeadline(ctx, s.opts.QueryTimeout)
}

// boundBulk is bound for whole-collection work: imports, exports,
// migrations.
func (s *Store) boundBulk(ctx context.Context) (context.Context, context.CancelFunc) {
	return withDeadline(ctx, s.opts.BulkTimeout)
}

func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// IsTimeout reports whether err is a deadline of database work.
func IsTimeout(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err)
}

// IsBusy reports whether err is FerretDB's SQLite backend giving up on
// the school's write lock ("database is locked", SQLITE_BUSY) after its
// busy wait (10 s): another writer of the same school held it all that
// time, typically a long update, possibly one whose client was killed
// (FerretDB runs it to its end). The command failed and the database is
// fine: the same write succeeds once the other writer is done, so callers
// answer "busy, try again" (503), not a server error.
func IsBusy(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && strings.Contains(se.Error(), "SQLITE_BUSY")
}

// timeoutError wraps err with what was being done, and with ErrTimeout
// when it is a deadline (the server's MaxTimeMSExpired, code 50, too).
func timeoutError(doing string, err error) error {
	var se mongo.ServerError
	if IsTimeout(err) || (errors.As(err, &se) && se.HasErrorCode(50)) {
		return fmt.Errorf("%s: %w", doing, errors.Join(ErrTimeout, err))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// distinctStrings reads the distinct string values of field in col,
// bounded as any query, but through a context with no deadline: the driver
// sends what is left of a deadline as maxTimeMS, and FerretDB v1 refuses
// distinct with it ("distinct: unknown field \"maxTimeMS\"", whenever the
// driver has measured the connection's round trip). The bound is a cancel
// at the same moment instead (the caller's end, or the store's query
// timeout). The command's error is checked before its values: the
// driver's Decode does not, and turned the refusal into "unexpected EOF".
func (s *Store) distinctStrings(ctx context.Context, col, field string) ([]string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	dl, _ := ctx.Deadline() // bound always sets one
	nctx, ncancel := context.WithCancel(context.WithoutCancel(ctx))
	defer ncancel()
	stop := context.AfterFunc(ctx, ncancel)
	defer stop()
	dr := s.col(col).Distinct(nctx, field, bson.D{})
	if err := dr.Err(); err != nil {
		if ctx.Err() != nil && time.Now().After(dl) {
			return nil, fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return nil, err
	}
	var vals []string
	if err := dr.Decode(&vals); err != nil {
		return nil, err
	}
	return vals, nil
}
