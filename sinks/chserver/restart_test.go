package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
)

// server is a private clickhouse-server (Debian's 18.16) in a temporary
// directory on free 127.0.0.1 ports, for tests that kill and restart it. It
// copies the configuration approach of scripts/clickhouse.sh; the shared
// server on 59000 is never touched.
type server struct {
	t        *testing.T
	dir      string
	tcp, web int
	cmd      *exec.Cmd
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPrivateServer(t *testing.T) *server {
	bin := "/usr/sbin/clickhouse-server"
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "clickhouse-server binary", err)
	}
	s := &server{t: t, dir: t.TempDir(), tcp: freePort(t), web: freePort(t)}
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <max_connections>64</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>50</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mark_cache_size>268435456</mark_cache_size>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
`, s.dir, s.tcp, s.web)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default><readonly><readonly>1</readonly></readonly></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>
    <analyst><password>analyst-pw</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>readonly</profile><quota>default</quota><allow_databases><database>shop</database></allow_databases></analyst>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(s.dir, "config.xml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "users.xml"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.tcp) }

func (s *server) start() {
	s.t.Helper()
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	s.cmd = exec.Command("/usr/sbin/clickhouse-server", "--config-file="+filepath.Join(s.dir, "config.xml"))
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start clickhouse-server: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", s.web))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "log", "server.err.log"))
			s.t.Fatalf("private clickhouse-server did not start within 60s: %v\n%s", err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to exit.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	s.cmd = nil
}

// The read-only analyst user as 18.16 declares it (users.xml, readonly
// profile, one database): SELECT works, writes and DDL are refused, and
// QueryReadOnly works for a user that is already read-only.
func TestAnalystUserFrom1816UsersXML(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a clickhouse-server")
	}
	srv := startPrivateServer(t)
	ctx := context.Background()
	w, err := Open(ctx, Options{Addr: srv.addr(), Database: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustExec(t, w, "CREATE TABLE sales (id Int64, total Decimal(18, 2)) ENGINE = MergeTree ORDER BY id")
	if err := w.Insert(ctx, "sales", []string{"id", "total"}, [][]any{{1, "9.50"}, {2, "0.50"}}); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, Options{Addr: srv.addr(), Database: "shop", User: "analyst", Password: "analyst-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r := query(t, a, "SELECT count(), toString(sum(total)) FROM sales")
	if r.Rows[0][0] != uint64(2) || r.Rows[0][1] != "10.00" {
		t.Fatalf("analyst SELECT: %v", r.Rows)
	}
	if r, err := sinks.QueryReadOnly(ctx, a, "SELECT max(id) FROM sales", nil); err != nil || r.Rows[0][0] != int64(2) {
		t.Fatalf("QueryReadOnly as analyst: %v, %v", r, err)
	}
	for _, q := range []string{"INSERT INTO sales VALUES (3, 1)", "ALTER TABLE sales DELETE WHERE 1", "DROP TABLE sales", "CREATE TABLE x (a Int8) ENGINE = Memory"} {
		err := a.Exec(ctx, q)
		var ex *sinks.Exception
		if !errors.As(err, &ex) || ex.Code != 164 {
			t.Errorf("analyst %s: err = %v, want READONLY (164)", q, err)
		}
	}
	if err := a.Insert(ctx, "sales", []string{"id", "total"}, [][]any{{4, "1"}}); err == nil {
		t.Error("analyst Insert succeeded")
	}
	if r := query(t, w, "SELECT count() FROM sales"); r.Rows[0][0] != uint64(2) {
		t.Errorf("rows after refused writes: %v", r.Rows[0][0])
	}
}

// countingHandler counts the engine's retry warnings.
type countingHandler struct {
	slog.Handler
	t       *testing.T
	retries *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "retrying" {
		if h.retries.Add(1) <= 3 {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "err" {
					h.t.Logf("retried after: %v", a.Value)
				}
				return true
			})
		}
	}
	return nil
}

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

// A server killed (SIGKILL) mid-stream and restarted: the sink reconnects by
// itself and, with the table read FINAL, loses nothing and doubles nothing.
// "between" kills while the writer pauses between batches (the next
// statements meet a refused dial); "in-flight" kills while a large batch is
// being sent (the statement fails mid-way, its fate unknown to the client, and
// is retried; a block the server committed before dying is collapsed by
// ReplacingMergeTree).
func TestServerRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a clickhouse-server")
	}
	for _, tc := range []struct {
		name              string
		batches, perBatch int
		pause, killDelay  time.Duration
	}{
		{"between", 60, 2000, 20 * time.Millisecond, 0},
		{"in-flight", 10, 60_000, 0, 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restartMidStream(t, tc.batches, tc.perBatch, tc.pause, tc.killDelay)
		})
	}
}

func restartMidStream(t *testing.T, batches, perBatch int, pause, killDelay time.Duration) {
	srv := startPrivateServer(t)
	var retries atomic.Int64
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, t: t, retries: &retries})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := Open(ctx, Options{Addr: srv.addr(), Database: "restart", Log: log, DialTimeout: time.Second,
		Backoff: sinks.Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Attempts: 120}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mustExec(t, e, "CREATE TABLE IF NOT EXISTS events (id Int64, payload String, _version UInt64) ENGINE = ReplacingMergeTree(_version) ORDER BY id")

	errc := make(chan error, 1)
	progress := make(chan int, batches)
	go func() {
		for b := 0; b < batches; b++ {
			rows := make([][]any, perBatch)
			for i := range rows {
				id := int64(b*perBatch + i)
				rows[i] = []any{id, strings.Repeat("x", 64), uint64(id)}
			}
			if err := e.Insert(ctx, "events", []string{"id", "payload", "_version"}, rows); err != nil {
				errc <- fmt.Errorf("batch %d: %w", b, err)
				return
			}
			progress <- b
			time.Sleep(pause)
		}
		errc <- nil
	}()
	for b := range progress {
		if b == 2 {
			break
		}
	}
	time.Sleep(killDelay)
	srv.kill()
	t.Log("server killed")
	time.Sleep(time.Second)
	srv.start()
	t.Log("server restarted")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	total := batches * perBatch
	r := query(t, e, "SELECT count(), uniqExact(id), min(id), max(id) FROM events FINAL")
	want := []any{uint64(total), uint64(total), int64(0), int64(total - 1)}
	for i := range want {
		if r.Rows[0][i] != want[i] {
			t.Fatalf("after restart: count, uniq, min, max = %v, want %v", r.Rows[0], want)
		}
	}
	raw := query(t, e, "SELECT count() FROM events")
	t.Logf("rows %d FINAL (raw count %v; more would be blocks committed before the kill and sent again), %d retried statements", total, raw.Rows[0][0], retries.Load())
	if retries.Load() == 0 {
		t.Error("no statement was retried: the kill did not hit the stream")
	}
}
