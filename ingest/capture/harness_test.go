package capture

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
)

// itEnv is one integration test's database, Kafka prefix, slot and publication.
type itEnv struct {
	t       *testing.T
	pgURL   string
	brokers []string
	prefix  string
	slot    string
	pub     string
	admin   *pgx.Conn
	logs    logBuffer // what capture logged
}

func newITEnv(t *testing.T) *itEnv {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	url := testenv.Postgres(t)
	e := &itEnv{t: t, pgURL: url, brokers: brokers, prefix: testenv.Name("cap"), slot: testenv.Name("slot"), pub: "orderflow_pub"}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = conn
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	t.Cleanup(func() { e.deleteTopics() })
	return e
}

func (e *itEnv) exec(sqls ...string) {
	e.t.Helper()
	for _, s := range sqls {
		if _, err := e.admin.Exec(context.Background(), s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

func (e *itEnv) options() Options {
	return Options{
		Postgres:          config.Postgres{URL: e.pgURL, Slot: e.slot, Publication: e.pub},
		Kafka:             config.Kafka{Brokers: e.brokers, TopicPrefix: e.prefix},
		Partitions:        3,
		FlushInterval:     50 * time.Millisecond,
		StatusInterval:    time.Second,
		HeartbeatInterval: 300 * time.Millisecond,
		RetryBackoff:      200 * time.Millisecond,
		SpoolDir:          e.t.TempDir(),
	}
}

// start runs capture in-process until the test ends.
func (e *itEnv) start(o Options) (*Capture, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testWriter{e.t, &e.logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := New(o, log, NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			e.t.Errorf("capture.Run: %v", err)
		}
	})
	// Creating a slot waits for every transaction running in the cluster.
	deadline := time.Now().Add(2 * time.Minute)
	for !c.Ready() {
		select {
		case err := <-done:
			e.t.Fatalf("capture stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatal("capture not ready after 2m")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, reg
}

// testWriter logs to the test and keeps a copy in buf.
type testWriter struct {
	t   *testing.T
	buf *logBuffer
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	w.buf.mu.Lock()
	defer w.buf.mu.Unlock()
	return w.buf.b.Write(p)
}

// logBuffer holds log output written from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *itEnv) kafka(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.brokers...)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return cl
}

func (e *itEnv) deleteTopics() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var mine []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, e.prefix+".") {
			mine = append(mine, t)
		}
	}
	if len(mine) > 0 {
		_, _ = adm.DeleteTopics(ctx, mine...)
	}
}

// committed reads every record committed so far (read_committed) on the
// topics that exist among topics.
func (e *itEnv) committed(topics ...string) []*kgo.Record {
	e.t.Helper()
	var out []*kgo.Record
	e.eachCommitted(func(r *kgo.Record) { out = append(out, r) }, topics...)
	return out
}

// eachCommitted calls fn for every record committed so far on topics.
func (e *itEnv) eachCommitted(fn func(*kgo.Record), topics ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admCl := e.kafka()
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	lsos, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		e.t.Fatalf("list stable offsets: %v", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		e.t.Fatalf("list start offsets: %v", err)
	}
	want := map[string]map[int32]int64{} // last offset to reach
	parts := map[string]map[int32]kgo.Offset{}
	lsos.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		st, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset <= st.Offset {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]int64{}
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		want[o.Topic][o.Partition] = o.Offset - 1
		parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
	})
	if len(parts) == 0 {
		return
	}
	cl := e.kafka(kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxBytes(64<<20))
	defer cl.Close()
	remaining := 0
	for _, ps := range want {
		remaining += len(ps)
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("reading committed records: %v (%d partitions not drained)", ctx.Err(), remaining)
		}
		fs.EachError(func(t string, p int32, err error) { e.t.Fatalf("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			last, ok := want[r.Topic][r.Partition]
			if !ok || r.Offset > last {
				return
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if r.Offset == last {
				delete(want[r.Topic], r.Partition)
				remaining--
			}
		})
	}
}

// waitFlushed waits until the slot's confirmed_flush_lsn reaches the current
// WAL position (everything committed so far is durable in Kafka).
func (e *itEnv) waitFlushed(timeout time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	var target string
	if err := e.admin.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		if err := e.admin.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn >= $2::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1", e.slot, target).Scan(&ok); err != nil && err != pgx.ErrNoRows {
			e.t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var cur *string
			_ = e.admin.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&cur)
			e.t.Fatalf("slot did not reach %s within %s (confirmed_flush_lsn %v)", target, timeout, deref(cur))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func (e *itEnv) topic(table string) string { return envelope.Topic(e.prefix, "public", table) }

// decoded is a consumed change event with where it was read.
type decoded struct {
	*envelope.Event
	key       string
	rec       *kgo.Record
	headerLSN string
	headerTx  string
}

func decodeAll(t *testing.T, recs []*kgo.Record) []decoded {
	t.Helper()
	var out []decoded
	for _, r := range recs {
		ev, err := envelope.Decode(r.Value)
		if err != nil {
			t.Fatalf("decode %s@%d/%d: %v (%s)", r.Topic, r.Partition, r.Offset, err, r.Value)
		}
		d := decoded{Event: ev, key: string(r.Key), rec: r}
		for _, h := range r.Headers {
			switch h.Key {
			case envelope.HeaderLSN:
				d.headerLSN = string(h.Value)
			case envelope.HeaderTxID:
				d.headerTx = string(h.Value)
			}
		}
		out = append(out, d)
	}
	return out
}

func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// --- the orderflow binary, for tests that kill or measure a real process ---

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func orderflowBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orderflow-capture-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "orderflow")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/orderflow")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/orderflow: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// proc is a running `orderflow capture` process.
type proc struct {
	cmd     *exec.Cmd
	metrics string
	done    chan struct{}
	state   *os.ProcessState
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProc starts the capture binary with config in the environment; its
// log goes to logf.
func (e *itEnv) startProc(logf io.Writer, extra ...string) *proc {
	e.t.Helper()
	addr := freePort(e.t)
	cmd := exec.Command(orderflowBinary(e.t), "capture")
	cmd.Env = append(os.Environ(),
		"ORDERFLOW_PG_URL="+e.pgURL, "ORDERFLOW_PG_SLOT="+e.slot, "ORDERFLOW_PG_PUBLICATION="+e.pub,
		"ORDERFLOW_KAFKA_BROKERS="+strings.Join(e.brokers, ","), "ORDERFLOW_KAFKA_TOPIC_PREFIX="+e.prefix,
		"ORDERFLOW_HTTP_ADDR="+addr, "ORDERFLOW_CAPTURE_FLUSH_INTERVAL=50ms", "ORDERFLOW_CAPTURE_STATUS_INTERVAL=1s",
		"ORDERFLOW_CAPTURE_HEARTBEAT_INTERVAL=500ms", "ORDERFLOW_CAPTURE_SPOOL_DIR="+e.t.TempDir())
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &proc{cmd: cmd, metrics: "http://" + addr + "/metrics", done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	e.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitReady waits for /readyz to answer 200 (replication is streaming).
func (p *proc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	u := strings.TrimSuffix(p.metrics, "/metrics") + "/readyz"
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("capture exited: %v", p.state)
		default:
		}
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("capture not ready within %s", timeout)
}

// stop ends the process gracefully and returns its peak RSS in bytes.
func (p *proc) stop(t *testing.T) int64 {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatal("capture did not stop within 30s of SIGTERM")
	}
	if ru, ok := p.state.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}

// peakRSS reads VmHWM of the running process.
func (p *proc) peakRSS() int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// metric scrapes one sample (summed over label sets matching the filter
// substring) from the process's /metrics.
func (p *proc) metric(name, filter string) (float64, error) {
	resp, err := http.Get(p.metrics)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		if filter != "" && !strings.Contains(line, filter) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum, s.Err()
}
