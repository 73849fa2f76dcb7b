package smoke

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/testenv"
)

// TestPostgresLogicalReplication creates a logical slot, commits one row and
// reads it back through pgoutput with pglogrepl.
func TestPostgresLogicalReplication(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE TABLE smoke (id bigint PRIMARY KEY, name text NOT NULL)",
		"CREATE PUBLICATION smoke_pub FOR TABLE smoke",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	repl, err := pgconn.Connect(ctx, dsn+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, "smoke_slot", "pgoutput", pglogrepl.CreateReplicationSlotOptions{Temporary: true})
	if err != nil {
		t.Fatalf("create slot: %v", err)
	}
	start, err := pglogrepl.ParseLSN(slot.ConsistentPoint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO smoke VALUES (42, 'answer')"); err != nil {
		t.Fatal(err)
	}
	err = pglogrepl.StartReplication(ctx, repl, "smoke_slot", start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '2'", "publication_names 'smoke_pub'"},
	})
	if err != nil {
		t.Fatalf("start replication: %v", err)
	}

	relations := map[uint32]*pglogrepl.RelationMessageV2{}
	for {
		msg, err := repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			continue
		}
		if cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		lm, err := pglogrepl.ParseV2(xld.WALData, false)
		if err != nil {
			t.Fatal(err)
		}
		switch m := lm.(type) {
		case *pglogrepl.RelationMessageV2:
			relations[m.RelationID] = m
		case *pglogrepl.InsertMessageV2:
			rel := relations[m.RelationID]
			if rel == nil || rel.RelationName != "smoke" {
				t.Fatalf("insert for unknown relation %d", m.RelationID)
			}
			got := map[string]string{}
			for i, col := range m.Tuple.Columns {
				got[rel.Columns[i].Name] = string(col.Data)
			}
			if got["id"] != "42" || got["name"] != "answer" {
				t.Fatalf("row = %v, want id=42 name=answer", got)
			}
			if xld.WALStart < start {
				t.Fatalf("change LSN %s before slot start %s", xld.WALStart, start)
			}
			return
		}
	}
}

// TestKafkaRoundTrip produces plain and transactional records and reads them
// back; with read_committed, an aborted transaction's record never shows.
func TestKafkaRoundTrip(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := testenv.Name("smoke")

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.Background(), topic) }()

	plain, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.ProduceSync(ctx, &kgo.Record{Key: []byte("k1"), Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.TransactionalID(topic+"-tx"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for i, end := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		val := []string{"aborted", "committed"}[i]
		if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte("k2"), Value: []byte(val)}).FirstErr(); err != nil {
			t.Fatalf("transactional produce: %v", err)
		}
		if err := tx.EndTransaction(ctx, end); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []string
	for len(got) < 2 {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v (got %v so far)", err, got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, fmt.Sprintf("%s=%s", r.Key, r.Value)) })
	}
	if strings.Join(got, ",") != "k1=plain,k2=committed" {
		t.Fatalf("read_committed records = %v, want [k1=plain k2=committed]", got)
	}
}
