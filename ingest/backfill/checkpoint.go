package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CheckpointTopic is the compacted topic holding backfill plans and chunk
// checkpoints.
func CheckpointTopic(prefix string) string { return prefix + "._backfill_checkpoints" }

// runRecord is a backfill run's plan and state. It is written without a
// transaction when the run is planned and when it finishes.
type runRecord struct {
	Kind       string `json:"kind"` // "run"
	ID         string `json:"id"`
	State      string `json:"state"` // running | done
	DB         string `json:"db"`
	Slot       string `json:"slot"`
	ChunkRows  int64  `json:"chunk_rows"`
	Workers    int    `json:"workers"` // most workers any attempt used (their producers are fenced)
	Units      []unit `json:"units"`
	SnapLSN    uint64 `json:"first_snapshot_lsn"`
	StartedMs  int64  `json:"started_ms"`
	FinishedMs int64  `json:"finished_ms,omitempty"`
}

// unit is one table's share of a plan: key ranges of ChunkRows over
// [Min, Max] of Key. An orders unit also copies the items of the orders in
// each range (order_items.order_id BETWEEN lo AND hi), in the same Kafka
// transaction, so that no order is published without its items.
type unit struct {
	Table  string           `json:"table"`  // the table whose key is split
	Key    string           `json:"key"`    // the column ranges are over
	Copies []string         `json:"copies"` // tables copied per chunk
	Min    int64            `json:"min"`
	Max    int64            `json:"max"`
	Rows   map[string]int64 `json:"rows"` // rows per copied table in the first snapshot
}

// chunks returns the ranges of u.
func (u unit) chunks(size int64) [][2]int64 {
	var out [][2]int64
	if u.Max < u.Min {
		return out
	}
	for lo := u.Min; lo <= u.Max; lo += size {
		hi := lo + size - 1
		if hi > u.Max || hi < lo { // overflow guard
			hi = u.Max
		}
		out = append(out, [2]int64{lo, hi})
		if hi == u.Max {
			break
		}
	}
	return out
}

// chunkRecord marks a chunk done; it is produced in the Kafka transaction
// that holds the chunk's events, so it is visible exactly when they are.
type chunkRecord struct {
	Kind    string           `json:"kind"` // "chunk"
	Run     string           `json:"run"`
	Table   string           `json:"table"`
	Lo      int64            `json:"lo"`
	Hi      int64            `json:"hi"`
	Rows    map[string]int64 `json:"rows"`
	LSN     uint64           `json:"lsn"`
	Attempt string           `json:"attempt"`
	DoneMs  int64            `json:"done_ms"`
}

func runKey(db, slot string) string { return db + "/" + slot + "/run" }

func chunkKey(db, slot, run, table string, lo int64) string {
	return fmt.Sprintf("%s/%s/%s/%s/%d", db, slot, run, table, lo)
}

// readCheckpoints reads the whole checkpoint topic and returns the latest
// run record for db/slot and the chunk records of every run, keyed by
// chunkKey. committed selects read_committed (chunk records of aborted
// transactions are invisible); the run records are written outside
// transactions, so read_uncommitted sees them without waiting for an open
// transaction of a killed backfill to be fenced.
func readCheckpoints(ctx context.Context, base []kgo.Opt, topic, db, slot string, committed bool) (*runRecord, map[string]chunkRecord, error) {
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, base...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint reader: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	if committed {
		ends, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Err == nil && s.Offset >= o.Offset {
			return
		}
		if o.Offset > 0 {
			target[o.Partition] = o.Offset
		}
	})
	var run *runRecord
	chunks := map[string]chunkRecord{}
	prefix := db + "/" + slot + "/"
	progressed := time.Now()
	for len(target) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !kerr.IsRetriable(err) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, nil, fmt.Errorf("read %s: %w", topic, ferr)
		}
		if fs.NumRecords() == 0 {
			// Every target is below the last stable offset, so records
			// (or control markers) are there to read: keep polling, but
			// do not hang on a broker that stopped answering.
			if time.Since(progressed) > time.Minute {
				return nil, nil, fmt.Errorf("read %s: no progress for a minute with %d partitions short of their last stable offset", topic, len(target))
			}
			continue
		}
		progressed = time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= target[r.Partition] {
				delete(target, r.Partition)
			}
			if r.Attrs.IsControl() || len(r.Value) == 0 || !strings.HasPrefix(string(r.Key), prefix) {
				return
			}
			var kind struct {
				Kind string `json:"kind"`
			}
			if json.Unmarshal(r.Value, &kind) != nil {
				return
			}
			switch kind.Kind {
			case "run":
				var rr runRecord
				if json.Unmarshal(r.Value, &rr) == nil && string(r.Key) == runKey(db, slot) {
					run = &rr
				}
			case "chunk":
				var cr chunkRecord
				if json.Unmarshal(r.Value, &cr) == nil {
					chunks[string(r.Key)] = cr
				}
			}
		})
	}
	return run, chunks, nil
}

// fence bumps the epoch of the transactional IDs so that a transaction a
// killed backfill left open is aborted now (not at its timeout, which would
// hold back the last stable offset of every partition it touched).
func fence(ctx context.Context, cl *kgo.Client, ids []string, timeout time.Duration) error {
	for _, id := range ids {
		for attempt := 0; ; attempt++ {
			req := kmsg.NewPtrInitProducerIDRequest()
			tid := id
			req.TransactionalID = &tid
			req.TransactionTimeoutMillis = int32(timeout.Milliseconds())
			req.ProducerID, req.ProducerEpoch = -1, -1
			resp, err := req.RequestWith(ctx, cl)
			if err == nil {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			if err == nil {
				break
			}
			if attempt < 50 && (kerr.IsRetriable(err) || errors.Is(err, kerr.ConcurrentTransactions)) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			return fmt.Errorf("fence transactional id %s: %w", id, err)
		}
	}
	return nil
}
