package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Student IDs are handed out in claims: a claim is a document of the
// id_claims collection whose _id names its first ID ("students:41") and
// which owns the IDs [first, first+n). Inserting it is the atomic step:
// the unique _id lets exactly one caller own a start. Every claim starts
// where an earlier one ends (the first at the chain's base), so the claims
// tile the IDs without overlap: a caller whose start is taken reads that
// claim and moves to its end. findAndModify with $inc, used before, is a
// read-modify-write on FerretDB and let parallel creates share an ID.
//
// counters {_id: "students_next"} only remembers a recent end so that
// callers need not walk the chain from the base; it may lag, never lead:
// every value written to it is the end of a claim.
const (
	colIDClaims  = "id_claims"
	idClaimsOf   = "students"      // claim _id prefix
	idHintDocID  = "students_next" // in colCounters
	idBaseDocID  = "students:base" // in colIDClaims: where the chain starts
	legacySeqDoc = "students"      // counters document of schema version 1 ($inc)
	maxIDProbes  = 10_000
)

func claimID(first int64) string { return idClaimsOf + ":" + strconv.FormatInt(first, 10) }

// allocateIDs reserves n consecutive student IDs and returns the first.
// IDs start at 1, like a SQL sequence; a failed insert leaves a gap.
func (s *Store) allocateIDs(ctx context.Context, n int) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("allocate %d student ids: need at least one", n)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	next, err := s.idHint(ctx)
	if err != nil {
		return 0, fmt.Errorf("allocate %d student ids: %w", n, err)
	}
	claims := s.col(colIDClaims)
	for range maxIDProbes {
		_, err := claims.InsertOne(ctx, bson.D{{Key: "_id", Value: claimID(next)}, {Key: "n", Value: int64(n)}, {Key: "at", Value: s.now()}})
		if err == nil {
			// Only a hint: a failure costs the next caller a longer walk.
			_, _ = s.col(colCounters).UpdateOne(ctx, d("_id", idHintDocID),
				d("$max", d("next", next+int64(n))), options.UpdateOne().SetUpsert(true))
			return next, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return 0, timeoutError(fmt.Sprintf("allocate %d student ids: claim %d", n, next), s.full(err))
		}
		var c struct {
			N int64 `bson:"n"`
		}
		if err := claims.FindOne(ctx, d("_id", claimID(next))).Decode(&c); err != nil {
			return 0, timeoutError(fmt.Sprintf("allocate %d student ids: read claim %d", n, next), err)
		}
		if c.N < 1 {
			return 0, fmt.Errorf("allocate %d student ids: claim %d is damaged (n=%d)", n, next, c.N)
		}
		next += c.N
	}
	return 0, fmt.Errorf("allocate %d student ids: more than %d claims raced; try again", n, maxIDProbes)
}

// idHint returns where to start looking for a free claim: the hint, or
// the base of the chain. The base is fixed once per database, by the first
// caller that inserts the base document: one past the schema version 1
// counter and past every student ID existing then. Later callers read it,
// so that IDs inserted meanwhile under claims do not move it.
func (s *Store) idHint(ctx context.Context) (int64, error) {
	var hint struct {
		Next int64 `bson:"next"`
	}
	err := s.col(colCounters).FindOne(ctx, d("_id", idHintDocID)).Decode(&hint)
	if err == nil && hint.Next >= 1 {
		return hint.Next, nil
	}
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, timeoutError("read the id hint", err)
	}
	var base struct {
		First int64 `bson:"first"`
	}
	err = s.col(colIDClaims).FindOne(ctx, d("_id", idBaseDocID)).Decode(&base)
	if err == nil && base.First >= 1 {
		return base.First, nil
	}
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, timeoutError("read the id base", err)
	}
	var legacy struct {
		Seq int64 `bson:"seq"`
	}
	err = s.col(colCounters).FindOne(ctx, d("_id", legacySeqDoc)).Decode(&legacy)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, timeoutError("read the schema 1 id counter", err)
	}
	var top struct {
		ID studentKey `bson:"_id"`
	}
	err = s.col(colStudents).FindOne(ctx, bson.D{},
		options.FindOne().SetSort(d("_id", -1)).SetProjection(d("_id", 1))).Decode(&top)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, timeoutError("find the highest student id", err)
	}
	first := max(legacy.Seq, int64(top.ID)) + 1
	_, err = s.col(colIDClaims).InsertOne(ctx, bson.D{{Key: "_id", Value: idBaseDocID}, {Key: "first", Value: first}})
	if err == nil {
		return first, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return 0, timeoutError("record the id base", s.full(err))
	}
	if err := s.col(colIDClaims).FindOne(ctx, d("_id", idBaseDocID)).Decode(&base); err != nil || base.First < 1 {
		return 0, fmt.Errorf("read the id base: %w", errors.Join(errors.New("base document unreadable"), err))
	}
	return base.First, nil
}
