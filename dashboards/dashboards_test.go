package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/ingest/api"
	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/obs"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/pipeline"
	"github.com/orderflow/orderflow/queries"
	"github.com/orderflow/orderflow/queries/querytest"
	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chdb"
)

type target struct {
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	RefID     string `json:"refId"`
	RawSQL    string `json:"rawSql"`
	Expr      string `json:"expr"`
	QueryType string `json:"queryType"`
	Format    *int   `json:"format"`
}

type panel struct {
	ID      int      `json:"id"`
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
	Time   struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
}

const (
	clickhouseUID  = "orderflow-clickhouse"
	prometheusUID  = "orderflow-prometheus"
	clickhouseType = "grafana-clickhouse-datasource"
)

func load(t *testing.T) map[string]*dashboard {
	t.Helper()
	names, _ := fs.Glob(FS, "*.json")
	if len(names) < 2 {
		t.Fatalf("dashboards: %v", names)
	}
	out := map[string]*dashboard{}
	for _, n := range names {
		b, _ := fs.ReadFile(FS, n)
		if !json.Valid(b) {
			t.Fatalf("%s: invalid JSON", n)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[n] = &d
	}
	return out
}

// panels flattens rows.
func panels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, panels(p.Panels)...)
	}
	return out
}

func TestDashboardsStructure(t *testing.T) {
	ds := load(t)
	for _, want := range []string{"business.json", "pipeline.json"} {
		if ds[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	uids := map[string]string{}
	titles := map[string]string{}
	for n, d := range ds {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title are required", n)
		}
		if len(d.UID) > 40 {
			t.Errorf("%s: uid %q longer than Grafana's 40 characters", n, d.UID)
		}
		if o, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %q", n, o, d.UID)
		}
		uids[d.UID] = n
		if o, dup := titles[d.Title]; dup {
			t.Errorf("%s and %s share title %q", n, o, d.Title)
		}
		titles[d.Title] = n
		ids := map[int]bool{}
		queries := 0
		for _, p := range panels(d.Panels) {
			if ids[p.ID] {
				t.Errorf("%s: duplicate panel id %d", n, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 {
				t.Errorf("%s panel %d: needs a title and at least one query", n, p.ID)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				queries++
				if refs[tg.RefID] || tg.RefID == "" {
					t.Errorf("%s panel %q: refId %q missing or repeated", n, p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				switch tg.Datasource.UID {
				case clickhouseUID:
					if tg.Datasource.Type != clickhouseType || strings.TrimSpace(tg.RawSQL) == "" || tg.Format == nil {
						t.Errorf("%s panel %q: a ClickHouse target needs type %s, rawSql and format", n, p.Title, clickhouseType)
					}
					if !strings.Contains(tg.RawSQL, "FINAL") || !strings.Contains(tg.RawSQL, "_is_deleted = 0") {
						t.Errorf("%s panel %q: reads without FINAL / _is_deleted = 0", n, p.Title)
					}
				case prometheusUID:
					if tg.Datasource.Type != "prometheus" || strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s panel %q: a Prometheus target needs type prometheus and expr", n, p.Title)
					}
				default:
					t.Errorf("%s panel %q: data source uid %q is not %s or %s", n, p.Title, tg.Datasource.UID, clickhouseUID, prometheusUID)
				}
			}
		}
		if queries == 0 {
			t.Errorf("%s: no queries", n)
		}
	}
	// the provisioning points at the uids and at this directory
	prov, err := os.ReadFile("../deploy/grafana/provisioning/datasources/datasources.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{clickhouseUID, prometheusUID, clickhouseType} {
		if !strings.Contains(string(prov), uid) {
			t.Errorf("datasources.yml does not provision %s", uid)
		}
	}
	compose, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(compose), "./dashboards:/var/lib/grafana/dashboards") {
		t.Error("docker-compose.yml does not mount ./dashboards into Grafana")
	}
}

// expandMacros replaces the grafana-clickhouse-datasource macros and
// Grafana's global variables the way the plugin does for a time range
// [from, to] and interval.
func expandMacros(sql string, from, to time.Time, interval time.Duration) string {
	fs, ts := strconv.FormatInt(from.Unix(), 10), strconv.FormatInt(to.Unix(), 10)
	fms, tms := strconv.FormatInt(from.UnixMilli(), 10), strconv.FormatInt(to.UnixMilli(), 10)
	isec := strconv.FormatInt(int64(interval/time.Second), 10)
	fn := func(name string, f func(arg string) string) {
		re := regexp.MustCompile(`\$__` + name + `\(([^()]*)\)`)
		sql = re.ReplaceAllStringFunc(sql, func(m string) string { return f(strings.TrimSpace(re.FindStringSubmatch(m)[1])) })
	}
	fn("timeFilter_ms", func(c string) string {
		return fmt.Sprintf("%s >= fromUnixTimestamp64Milli(%s) AND %s <= fromUnixTimestamp64Milli(%s)", c, fms, c, tms)
	})
	fn("timeFilter", func(c string) string {
		return fmt.Sprintf("%s >= toDateTime(%s) AND %s <= toDateTime(%s)", c, fs, c, ts)
	})
	fn("dateFilter", func(c string) string {
		return fmt.Sprintf("%s >= toDate('%s') AND %s <= toDate('%s')", c, from.UTC().Format(time.DateOnly), c, to.UTC().Format(time.DateOnly))
	})
	fn("timeInterval_ms", func(c string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", c, interval.Milliseconds())
	})
	fn("timeInterval", func(c string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %s second)", c, isec)
	})
	r := strings.NewReplacer(
		"$__fromTime_ms", "fromUnixTimestamp64Milli("+fms+")", "$__toTime_ms", "fromUnixTimestamp64Milli("+tms+")",
		"$__fromTime", "toDateTime("+fs+")", "$__toTime", "toDateTime("+ts+")",
		"$__interval_ms", strconv.FormatInt(interval.Milliseconds(), 10), "$__interval_s", isec,
		"$__from", fms, "$__to", tms)
	return r.Replace(sql)
}

func TestExpandMacros(t *testing.T) {
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	got := expandMacros("SELECT $__timeInterval(placed_at) t WHERE $__timeFilter(placed_at) AND x < $__toTime AND $__dateFilter(d) AND y = $__interval_s", from, to, time.Hour)
	want := "SELECT toStartOfInterval(toDateTime(placed_at), INTERVAL 3600 second) t WHERE placed_at >= toDateTime(1735689600) AND placed_at <= toDateTime(1735776000) AND x < toDateTime(1735776000) AND d >= toDate('2025-01-01') AND d <= toDate('2025-01-02') AND y = 3600"
	if got != want {
		t.Fatalf("expanded:\n%s\nwant:\n%s", got, want)
	}
}

// TestClickHousePanelsRun runs every ClickHouse panel's SQL, macros
// expanded, on chDB with the query-side schema and the queries fixture,
// for the fixture's time range and a range with no data.
func TestClickHousePanelsRun(t *testing.T) {
	lib := testenv.ChdbLib(t)
	ctx := context.Background()
	dir := t.TempDir()
	e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: dir, Database: testenv.Name("dash")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := querytest.ApplySchema(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for name, d := range load(t) {
		for _, p := range panels(d.Panels) {
			for _, tg := range p.Targets {
				if tg.Datasource.UID != clickhouseUID {
					continue
				}
				n++
				for _, rng := range []struct {
					from, to  time.Time
					wantsRows bool
				}{{from, to, true}, {time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC), false}} {
					sql := expandMacros(tg.RawSQL, rng.from, rng.to, 24*time.Hour)
					if m := regexp.MustCompile(`\$\w+`).FindString(sql); m != "" {
						t.Errorf("%s panel %q: unexpanded macro or variable %s", name, p.Title, m)
						continue
					}
					// panels run as the read-only analyst would
					res, err := sinks.QueryReadOnly(ctx, e, sql, nil)
					if err != nil {
						t.Errorf("%s panel %q (%s .. %s): %v\n%s", name, p.Title, rng.from.Format(time.DateOnly), rng.to.Format(time.DateOnly), err, sql)
						continue
					}
					if rng.wantsRows && len(res.Rows) == 0 {
						t.Errorf("%s panel %q: no rows on the fixture", name, p.Title)
					}
					if tg.QueryType == "timeseries" && rng.wantsRows {
						if res.Columns[0] != "time" || !strings.HasPrefix(res.Types[0], "DateTime") {
							t.Errorf("%s panel %q: a time series needs a first DateTime column named time, got %s %s", name, p.Title, res.Columns[0], res.Types[0])
						}
					}
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d ClickHouse panels", n)
	}
}

// recorder keeps every collector registered on it (and registers them on
// the registry it wraps), so that metric names and labels can be listed
// even for vectors that have no series yet.
type recorder struct {
	*prometheus.Registry
	cs []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var (
	fqNameRe = regexp.MustCompile(`fqName: "([^"]+)"`)
	varLabRe = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// registeredMetrics instantiates every stage's metrics on a fresh registry
// and returns the exposed series names (histograms add _bucket, _sum and
// _count) with their label names.
func registeredMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	rec := &recorder{Registry: obs.NewRegistry()}
	capture.NewMetrics(rec)
	if _, err := pipeline.New(pipeline.Config{Brokers: []string{"127.0.0.1:1"}, TopicPrefix: "x"}, nil, rec, nil); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), "postgres://x@127.0.0.1:1/x")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := api.New(api.Options{Pool: pool, Registerer: rec}); err != nil {
		t.Fatal(err)
	}
	if _, err := queries.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	queries.NewRollupRefresher(nil, time.Minute, rec, nil)
	out := map[string]map[string]bool{}
	add := func(name string, labels map[string]bool) {
		out[name] = labels
	}
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		hist := false
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			hist = true
		}
		for d := range ch {
			s := d.String()
			m := fqNameRe.FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("cannot read a metric name from %s", s)
			}
			labels := map[string]bool{}
			if l := varLabRe.FindStringSubmatch(s); l != nil {
				for _, x := range strings.Split(l[1], ",") {
					if x = strings.TrimSpace(x); x != "" {
						labels[x] = true
					}
				}
			}
			if hist {
				add(m[1]+"_sum", labels)
				add(m[1]+"_count", labels)
				lb := map[string]bool{"le": true}
				for k := range labels {
					lb[k] = true
				}
				add(m[1]+"_bucket", lb)
			} else {
				add(m[1], labels)
			}
		}
	}
	// collectors that were gathered (go_*, process_*) too
	mfs, _ := rec.Gather()
	for _, mf := range mfs {
		if _, ok := out[mf.GetName()]; !ok {
			out[mf.GetName()] = map[string]bool{}
		}
	}
	return out
}

var (
	metricRe  = regexp.MustCompile(`\b(orderflow_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)\b`)
	byRe      = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcherRe = regexp.MustCompile(`\{([^}]*)\}`)
	labelRe   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// TestPromQLNamesRegisteredMetrics: every PromQL expression names at least
// one metric, every metric it names is registered by an orderflow stage,
// and every label it groups or filters by is a label of those metrics.
func TestPromQLNamesRegisteredMetrics(t *testing.T) {
	reg := registeredMetrics(t)
	for _, want := range []string{"orderflow_capture_events_total", "orderflow_transform_freshness_seconds_bucket", "orderflow_api_requests_total", "orderflow_queries_duration_seconds_count"} {
		if reg[want] == nil {
			names := make([]string, 0, len(reg))
			for n := range reg {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Fatalf("registry lacks %s; has %v", want, names)
		}
	}
	n := 0
	for name, d := range load(t) {
		for _, p := range panels(d.Panels) {
			for _, tg := range p.Targets {
				if tg.Datasource.UID != prometheusUID {
					continue
				}
				n++
				ms := metricRe.FindAllString(tg.Expr, -1)
				if len(ms) == 0 {
					t.Errorf("%s panel %q: expression names no orderflow metric: %s", name, p.Title, tg.Expr)
					continue
				}
				labels := map[string]bool{}
				for _, m := range ms {
					ls, ok := reg[m]
					if !ok {
						t.Errorf("%s panel %q: metric %s is not registered by any stage", name, p.Title, m)
						continue
					}
					for l := range ls {
						labels[l] = true
					}
				}
				var used []string
				for _, g := range byRe.FindAllStringSubmatch(tg.Expr, -1) {
					for _, l := range strings.Split(g[1], ",") {
						used = append(used, strings.TrimSpace(l))
					}
				}
				for _, mm := range matcherRe.FindAllStringSubmatch(tg.Expr, -1) {
					for _, l := range labelRe.FindAllStringSubmatch(mm[1], -1) {
						used = append(used, l[1])
					}
				}
				for _, l := range used {
					if l != "" && !labels[l] {
						t.Errorf("%s panel %q: label %q is not a label of %v", name, p.Title, l, ms)
					}
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d PromQL expressions", n)
	}
}
