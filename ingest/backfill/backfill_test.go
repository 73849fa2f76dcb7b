package backfill_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/ingest/backfill"
)

// TestBackfillWhileWriting: capture's slot does not exist yet; the backfill
// creates it with the exported snapshot while a writer changes the database
// (new orders, status changes, item additions, customer changes, deletes).
// Capture then streams from the snapshot's consistent point and the
// transformer loads both: ClickHouse equals PostgreSQL exactly per order.
func TestBackfillWhileWriting(t *testing.T) {
	e := newEnv(t)
	e.seed(3000, 800)
	stop := e.writer(1)
	var prog bytes.Buffer
	res, err := backfill.Run(context.Background(), backfill.Options{
		Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Workers: 3, ChunkRows: 250,
		Progress: &prog, ProgressInterval: 200 * time.Millisecond,
	}, testLog(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // some writes after the backfill too
	n := stop()
	t.Logf("backfill: %+v; writer committed %d transactions meanwhile", res, n)
	t.Logf("progress (last lines):\n%s", lastLines(prog.String(), 5))
	if !res.SlotCreated || res.Resumed || res.Skipped != 0 || res.Chunks == 0 {
		t.Fatalf("unexpected result %+v", res)
	}
	if !strings.Contains(prog.String(), "backfill orders") || !strings.Contains(prog.String(), "rows/s") {
		t.Errorf("no per-table progress:\n%s", prog.String())
	}
	e.startCapture()
	e.startTransformer()
	e.waitExact(90 * time.Second)
	e.oneSnapshotEventPerRow()
	// Changes after the backfill still produce exact facts (the transformer
	// holds the snapshot rows in its state).
	e.writeAWhile(2)
	e.waitExact(60 * time.Second)
}

// TestBackfillKillResume: capture is already streaming (the backfill takes
// its snapshot with a temporary slot). A backfill process is killed with
// SIGKILL several times mid-way while the database takes writes; each
// restart skips the chunks committed before and takes a new snapshot for the
// rest. The result is exact and every row has exactly one snapshot event.
func TestBackfillKillResume(t *testing.T) {
	bin := binary(t)
	e := newEnv(t)
	e.seed(4000, 1000)
	e.startCapture()
	stop := e.writer(3)
	args := []string{"backfill", "-pg-url", e.pgURL, "-pg-slot", e.slot, "-pg-publication", e.pub,
		"-kafka-brokers", strings.Join(e.brokers, ","), "-kafka-topic-prefix", e.prefix,
		"-workers", "2", "-chunk-rows", "50", "-progress-interval", "250ms", "-log-level", "debug"}
	kills := 0
	for attempt := 1; attempt <= 3; attempt++ {
		log, killed := runAndKill(t, bin, args, 8)
		if !killed {
			t.Fatalf("attempt %d finished before the kill landed (the run is done; nothing left to resume)", attempt)
		}
		kills++
		if attempt > 1 && !strings.Contains(log, "chunk done, skipping") {
			t.Errorf("attempt %d: no chunk skipped:\n%s", attempt, lastLines(log, 20))
		}
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	final := string(out)
	if err != nil {
		t.Fatalf("final backfill: %v\n%s", err, final)
	}
	n := stop()
	skipped := strings.Count(final, "chunk done, skipping")
	t.Logf("killed %d times; final attempt skipped %d chunks; writer committed %d transactions\n%s", kills, skipped, n, lastLines(final, 8))
	if kills < 2 {
		t.Fatalf("only %d attempts were killed mid-way", kills)
	}
	if skipped == 0 {
		t.Fatal("the final attempt skipped no chunk")
	}
	e.startTransformer()
	e.waitExact(120 * time.Second)
	events := e.oneSnapshotEventPerRow()
	var pgc, pgo, pgi int
	_ = e.admin.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items)").Scan(&pgc, &pgo, &pgi)
	t.Logf("snapshot events: customers %d, orders %d, order_items %d (PostgreSQL now: %d, %d, %d)",
		len(events["customers"]), len(events["orders"]), len(events["order_items"]), pgc, pgo, pgi)
}

// runAndKill starts the backfill and kills it with SIGKILL once it has
// committed `after` more chunks (its "chunk committed" debug lines),
// returning its output and whether it was killed before finishing.
func runAndKill(t *testing.T, bin string, args []string, after int) (string, bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var buf strings.Builder
	progressed := make(chan struct{}, 4096)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			mu.Lock()
			buf.WriteString(l + "\n")
			mu.Unlock()
			if strings.Contains(l, "chunk committed") {
				progressed <- struct{}{}
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	seen := 0
	timeout := time.After(60 * time.Second)
loop:
	for {
		select {
		case <-progressed:
			seen++
			if seen >= after {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				// Killed mid-way only if the signal ended it (it may have
				// finished the run while the lines were in the pipe).
				ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
				killed = ok && ws.Signaled()
				break loop
			}
		case err := <-done:
			if err != nil {
				mu.Lock()
				t.Fatalf("backfill failed: %v\n%s", err, buf.String())
			}
			break loop
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatal("backfill did not progress")
		}
	}
	_ = pw.Close()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return buf.String(), killed
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// TestBackfillWithTransformerRunning: capture and the transformer already
// run (the transformer applies streamed changes of pre-existing orders
// before their snapshot rows arrive) while the backfill publishes the
// snapshot and a writer changes the database. The result is still exact.
func TestBackfillWithTransformerRunning(t *testing.T) {
	e := newEnv(t)
	e.seed(3000, 800)
	e.startCapture()
	e.startTransformer()
	stop := e.writer(4)
	time.Sleep(500 * time.Millisecond) // streamed changes of old rows first
	res, err := backfill.Run(context.Background(), backfill.Options{
		Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Workers: 2, ChunkRows: 200,
	}, testLog(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	n := stop()
	t.Logf("backfill: %+v; writer committed %d transactions", res, n)
	if res.SlotCreated {
		t.Error("capture's slot existed: the snapshot should come from a temporary slot")
	}
	e.waitExact(90 * time.Second)
}
