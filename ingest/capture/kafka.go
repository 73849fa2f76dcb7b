package capture

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/orderflow/orderflow/internal/config"
)

// KafkaClientOpts turns the Kafka section of the config into franz-go
// options: brokers, TLS and SASL.
func KafkaClientOpts(k config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.TLSCAFile != "" {
			pem, err := os.ReadFile(k.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("read Kafka CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka CA file %s holds no PEM certificate", k.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	var mech sasl.Mechanism
	switch k.SASLMechanism {
	case "":
	case "PLAIN":
		mech = plain.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsMechanism()
	case "SCRAM-SHA-256":
		mech = scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		mech = scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha512Mechanism()
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q", k.SASLMechanism)
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// Checkpoint is the position capture has made durable in Kafka. It is
// written in the same Kafka transaction as the events it covers, so it is
// visible (read_committed) exactly when they are.
type Checkpoint struct {
	Slot       string `json:"slot"`
	DB         string `json:"db"`
	LSN        uint64 `json:"lsn"` // end LSN of the last PostgreSQL transaction in Kafka
	LSNText    string `json:"lsn_text"`
	CommitLSN  uint64 `json:"commit_lsn"`
	Xid        uint32 `json:"xid"`
	CommitTsMs int64  `json:"commit_ts_ms"`
	WrittenMs  int64  `json:"written_ms"`
}

// CheckpointTopic is the compacted topic holding capture checkpoints.
func CheckpointTopic(prefix string) string { return prefix + "._capture_checkpoints" }

// sink is the transactional Kafka producer: one open Kafka transaction at a
// time, records produced asynchronously into it, committed with a checkpoint.
type sink struct {
	cl         *kgo.Client
	adm        *kadm.Client
	partitions int32
	rf         int16
	known      map[string]bool
	open       bool

	mu       sync.Mutex
	firstErr error
}

func newSink(base []kgo.Opt, txnID string, partitions int32, rf int16, maxBufBytes int, txnTimeout time.Duration) (*sink, error) {
	opts := append([]kgo.Opt{}, base...)
	opts = append(opts,
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedBytes(maxBufBytes),
		kgo.MaxBufferedRecords(50000),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.UnknownTopicRetries(20),
		kgo.ProduceRequestTimeout(30*time.Second),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &sink{cl: cl, adm: kadm.NewClient(cl), partitions: partitions, rf: rf, known: map[string]bool{}}, nil
}

// init fences any earlier producer with the same transactional ID: Kafka
// aborts its open transaction (or completes one it was committing) before
// answering, so the checkpoint read afterwards is final.
func (s *sink) init(ctx context.Context) error {
	if _, _, err := s.cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("init transactional producer: %w", err)
	}
	return nil
}

// ensureTopic creates topic if it does not exist.
func (s *sink) ensureTopic(ctx context.Context, topic string, partitions int32, configs map[string]*string) error {
	if s.known[topic] {
		return nil
	}
	if partitions <= 0 {
		partitions = s.partitions
	}
	resp, err := s.adm.CreateTopic(ctx, partitions, s.rf, configs, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	s.known[topic] = true
	return nil
}

func (s *sink) begin() error {
	if s.open {
		return nil
	}
	if err := s.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin kafka transaction: %w", err)
	}
	s.open = true
	return nil
}

func (s *sink) fail(err error) {
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

func (s *sink) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// produce buffers rec in the open transaction; it blocks while the client's
// buffer is full.
func (s *sink) produce(ctx context.Context, rec *kgo.Record) {
	s.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			s.fail(fmt.Errorf("produce to %s: %w", r.Topic, err))
		}
	})
}

// commit writes the checkpoint into the open transaction, waits for every
// record to be acknowledged and commits.
func (s *sink) commit(ctx context.Context, ckpt *kgo.Record) error {
	if !s.open {
		return nil
	}
	s.produce(ctx, ckpt)
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush kafka transaction: %w", err)
	}
	if err := s.err(); err != nil {
		_ = s.abort(ctx)
		return err
	}
	s.open = false
	if err := s.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit kafka transaction: %w", err)
	}
	return nil
}

// abort drops the open transaction (nothing in it becomes visible).
func (s *sink) abort(ctx context.Context) error {
	if !s.open {
		return nil
	}
	s.open = false
	if err := s.cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("abort buffered records: %w", err)
	}
	if err := s.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("abort kafka transaction: %w", err)
	}
	return nil
}

func (s *sink) close() { s.cl.Close() }

// readCheckpoint returns the last committed checkpoint under key, reading the
// checkpoint topic's committed (read_committed) tail.
func readCheckpoint(ctx context.Context, base []kgo.Opt, topic, key string) (*Checkpoint, error) {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	lsos, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list stable offsets of %s: %w", topic, err)
	}
	st, ok1 := starts.Lookup(topic, 0)
	end, ok2 := lsos.Lookup(topic, 0)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("checkpoint topic %s has no partition 0", topic)
	}
	if st.Err != nil || end.Err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, errors.Join(st.Err, end.Err))
	}
	if end.Offset <= st.Offset {
		return nil, nil
	}
	// Most restarts only need the tail; scan everything when our key is not
	// in it.
	from := max(st.Offset, end.Offset-4096)
	for {
		ck, err := scanCheckpoints(ctx, base, topic, key, from, end.Offset)
		if err != nil || ck != nil || from == st.Offset {
			return ck, err
		}
		from = st.Offset
	}
}

func scanCheckpoints(ctx context.Context, base []kgo.Opt, topic, key string, from, end int64) (*Checkpoint, error) {
	opts := append([]kgo.Opt{}, base...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last *Checkpoint
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read checkpoint topic %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read checkpoint topic %s: %w", topic, ferr)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end-1 {
				done = true
			}
			if r.Attrs.IsControl() || string(r.Key) != key || r.Offset >= end {
				return
			}
			var c Checkpoint
			if json.Unmarshal(r.Value, &c) == nil {
				last = &c
			}
		})
		if done {
			return last, nil
		}
	}
}
