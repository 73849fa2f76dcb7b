package capture

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCheckpointCommittedOnly: the checkpoint read at start is the last one
// committed; one in an aborted (or still open) Kafka transaction is not seen.
// Runs against franz-go's in-memory fake cluster.
func TestCheckpointCommittedOnly(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "p._capture_checkpoints", "p.public.t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := CheckpointTopic("p")

	if ck, err := readCheckpoint(ctx, base, topic, "db/slot"); err != nil || ck != nil {
		t.Fatalf("empty topic: %v %v", ck, err)
	}
	snk, err := newSink(base, "p-capture-slot", 1, 1, 1<<20, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer snk.close()
	if err := snk.init(ctx); err != nil {
		t.Fatal(err)
	}
	ckRec := func(lsn uint64, key string) *kgo.Record {
		v, _ := json.Marshal(Checkpoint{LSN: lsn, Slot: "slot"})
		return &kgo.Record{Topic: topic, Key: []byte(key), Value: v}
	}
	commit := func(lsn uint64, key string) {
		t.Helper()
		if err := snk.begin(); err != nil {
			t.Fatal(err)
		}
		snk.produce(ctx, &kgo.Record{Topic: "p.public.t", Value: []byte("{}")})
		if err := snk.commit(ctx, ckRec(lsn, key)); err != nil {
			t.Fatal(err)
		}
	}
	commit(100, "db/slot")
	commit(200, "db/slot")
	commit(999, "db/other") // another slot sharing the topic
	// An aborted transaction with a later checkpoint.
	if err := snk.begin(); err != nil {
		t.Fatal(err)
	}
	snk.produce(ctx, ckRec(300, "db/slot"))
	if err := snk.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := snk.abort(ctx); err != nil {
		t.Fatal(err)
	}
	ck, err := readCheckpoint(ctx, base, topic, "db/slot")
	if err != nil {
		t.Fatal(err)
	}
	if ck == nil || ck.LSN != 200 {
		t.Fatalf("checkpoint = %+v, want lsn 200", ck)
	}
}
