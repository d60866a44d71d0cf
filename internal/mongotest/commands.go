package mongotest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Commands records the names of the commands a client sends.
type Commands struct {
	mu    sync.Mutex
	names []string
}

// Take returns the names recorded since the last Take.
func (c *Commands) Take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.names
	c.names = nil
	return out
}

// writeCommands are the commands that write, or make or drop collections
// and indexes.
var writeCommands = []string{"insert", "update", "delete", "findAndModify", "create", "createIndexes",
	"drop", "dropIndexes", "dropDatabase", "renameCollection"}

// Writes reports whether any of the commands writes.
func Writes(names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return slices.Contains(writeCommands, n) })
}

// RecordingClient returns a client of its own to the shared server, as a
// new process has one (nothing shared, nothing cached), recording the
// names of the commands it sends; it is disconnected when the test ends.
func RecordingClient(t testing.TB) (*mongo.Client, *Commands) {
	t.Helper()
	c := &Commands{}
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		c.names = append(c.names, e.CommandName)
		c.mu.Unlock()
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(URI(t)).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client, c
}
