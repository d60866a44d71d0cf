package devmongo

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/url"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// opMsg builds an OP_MSG with doc as its body section.
func opMsgBytes(t *testing.T, doc bson.D) []byte {
	t.Helper()
	body, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]byte, 21, 21+len(body))
	binary.LittleEndian.PutUint32(m[12:], opMsg)
	m = append(m, body...)
	binary.LittleEndian.PutUint32(m, uint32(len(m)))
	return m
}

func opQueryBytes(t *testing.T, doc bson.D) []byte {
	t.Helper()
	body, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]byte, 20, 64+len(body))
	binary.LittleEndian.PutUint32(m[12:], opQuery)
	m = append(m, "school.$cmd\x00"...)
	m = append(m, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)
	m = append(m, body...)
	binary.LittleEndian.PutUint32(m, uint32(len(m)))
	return m
}

func TestIsDropDatabase(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    []byte
		want bool
	}{
		{"OP_MSG dropDatabase", opMsgBytes(t, bson.D{{Key: "dropDatabase", Value: 1}, {Key: "$db", Value: "school"}}), true},
		{"OP_QUERY dropDatabase", opQueryBytes(t, bson.D{{Key: "dropDatabase", Value: 1}}), true},
		{"OP_MSG drop (a collection)", opMsgBytes(t, bson.D{{Key: "drop", Value: "students"}, {Key: "$db", Value: "school"}}), false},
		{"OP_MSG find whose filter names dropDatabase", opMsgBytes(t, bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "dropDatabase", Value: 1}}}}), false},
		{"OP_MSG insert of a collection called dropDatabase", opMsgBytes(t, bson.D{{Key: "insert", Value: "dropDatabase"}}), false},
		{"header only", opMsgBytes(t, bson.D{})[:16], false},
		{"empty", nil, false},
	} {
		if got := isDropDatabase(tc.m); got != tc.want {
			t.Errorf("%s: isDropDatabase = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkRelay prices the relay: finds by _id straight to FerretDB's
// socket and through the relay, side by side in one run.
//
//	go test -run '^$' -bench Relay -count 3 ./internal/devmongo/
func BenchmarkRelay(b *testing.B) {
	ctx := b.Context()
	s, err := Start(ctx, Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	for _, tc := range []struct{ name, uri string }{
		{"direct", "mongodb://" + url.PathEscape(s.relay.upstream)},
		{"relay", s.URI()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := mongo.Connect(options.Client().ApplyURI(tc.uri))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Disconnect(ctx)
			coll := c.Database("bench").Collection("c")
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 1}}}}, options.UpdateOne().SetUpsert(true)); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInsertMany prices a 500-document insert through campus dev's
// logger (a JSON handler at INFO): FerretDB adds attributes for every
// statement, which minLevel must not format for records it drops.
//
//	go test -run '^$' -bench InsertMany -count 3 ./internal/devmongo/
func BenchmarkInsertMany(b *testing.B) {
	ctx := b.Context()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	s, err := Start(ctx, Config{Dir: b.TempDir(), Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Disconnect(ctx)
	coll := c.Database("bench").Collection("c")
	docs := make([]any, 500)
	n := 0
	for b.Loop() {
		for i := range docs {
			n++
			docs[i] = bson.D{{Key: "_id", Value: n}, {Key: "name", Value: "Amina Kamau"}, {Key: "class", Value: "Form 2B"}}
		}
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
}
