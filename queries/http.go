package queries

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/orderflow/orderflow/internal/obs"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/sinks"
)

// Metrics are the report API's Prometheus series (orderflow_queries_*).
type Metrics struct {
	Requests *prometheus.CounterVec   // endpoint, status
	Duration *prometheus.HistogramVec // endpoint (reports: the report name; "sql")
}

// NewMetrics registers the report API's metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_queries_requests_total",
			Help: "Report API and analyst SQL requests, by endpoint (report name, list, sql) and HTTP status code.",
		}, []string{"endpoint", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderflow_queries_duration_seconds",
			Help:    "Report and analyst SQL latency (query and encoding), by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Requests, m.Duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register queries metrics: %w", err)
			}
		}
	}
	return m, nil
}

// HandlerOptions configure the report API.
type HandlerOptions struct {
	Registerer  prometheus.Registerer // nil: metrics are not registered
	Log         *slog.Logger
	Timeout     time.Duration // per request (default 60s)
	MaxSQLBytes int64         // largest POST /v1/sql body (default 1 MiB)
	MaxSQLRows  int           // most rows POST /v1/sql returns (default DefaultMaxSQLRows)
	Now         func() time.Time
	DefaultFmt  string // format when none is asked for (default json)
}

// Handler serves GET /v1/reports, GET /v1/reports/{name} and POST /v1/sql on
// eng. Mount it on the process's mux at "/v1/reports" and "/v1/sql" (or let
// it route everything under /v1/). Errors are RFC 9457 problem+json.
func Handler(eng sinks.Engine, o HandlerOptions) (http.Handler, error) {
	if eng == nil {
		return nil, errors.New("queries: nil engine")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxSQLBytes <= 0 {
		o.MaxSQLBytes = 1 << 20
	}
	if o.MaxSQLRows <= 0 {
		o.MaxSQLRows = DefaultMaxSQLRows
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DefaultFmt == "" {
		o.DefaultFmt = "json"
	}
	m, err := NewMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	h := &handler{eng: eng, o: o, m: m, log: o.Log.With("stage", "queries")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/reports", h.list)
	mux.HandleFunc("GET /v1/reports/{name}", h.report)
	mux.HandleFunc("POST /v1/sql", h.sql)
	mux.HandleFunc("/v1/reports", h.notAllowed("GET"))
	mux.HandleFunc("/v1/reports/{name}", h.notAllowed("GET"))
	mux.HandleFunc("/v1/sql", h.notAllowed("POST"))
	return mux, nil
}

// Problem type URIs of the report API.
const (
	TypeBadParam      = "https://orderflow.dev/problems/bad-parameter"
	TypeUnknownReport = "https://orderflow.dev/problems/unknown-report"
	TypeReadOnly      = "https://orderflow.dev/problems/read-only"
	TypeBadSQL        = "https://orderflow.dev/problems/bad-sql"
	TypeQueryFailed   = "https://orderflow.dev/problems/query-failed"
	TypeMethod        = "https://orderflow.dev/problems/method-not-allowed"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Param  string `json:"param,omitempty"`
	Code   int32  `json:"clickhouse_code,omitempty"`
}

type handler struct {
	eng sinks.Engine
	o   HandlerOptions
	m   *Metrics
	log *slog.Logger
}

func (h *handler) observe(endpoint string, start time.Time, sw *obs.StatusRecorder) {
	h.m.Requests.WithLabelValues(endpoint, strconv.Itoa(sw.Status)).Inc()
	h.m.Duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}

func writeProblem(w http.ResponseWriter, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func (h *handler) notAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeProblem(w, Problem{Type: TypeMethod, Status: http.StatusMethodNotAllowed,
			Detail: fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
	}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	sw := &obs.StatusRecorder{ResponseWriter: w}
	defer h.observe("list", time.Now(), sw)
	type item struct {
		*Report
		URL string `json:"url"`
	}
	out := struct {
		Reports []item `json:"reports"`
	}{}
	for _, rep := range List() {
		out.Reports = append(out.Reports, item{rep, "/v1/reports/" + rep.Name})
	}
	sw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(sw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// format picks the output format from ?format= or the Accept header.
func (h *handler) format(r *http.Request) (string, *Problem) {
	f := r.URL.Query().Get("format")
	if f == "" {
		switch {
		case strings.Contains(r.Header.Get("Accept"), "text/csv"):
			f = "csv"
		default:
			f = h.o.DefaultFmt
		}
	}
	switch f {
	case "json", "csv", "table":
		return f, nil
	}
	return "", &Problem{Type: TypeBadParam, Status: http.StatusBadRequest, Param: "format",
		Detail: fmt.Sprintf("format %q is not json, csv or table", f)}
}

func writeResult(w http.ResponseWriter, res *Result, format, filename string) {
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		if filename != "" {
			w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename + ".csv"}))
		}
	case "table":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "application/json")
	}
	_ = Write(w, res, format)
}

func (h *handler) report(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	endpoint := name
	rep, err := Get(name)
	if err != nil {
		endpoint = "unknown"
	}
	sw := &obs.StatusRecorder{ResponseWriter: w}
	defer h.observe(endpoint, time.Now(), sw)
	if err != nil {
		writeProblem(sw, Problem{Type: TypeUnknownReport, Status: http.StatusNotFound, Detail: err.Error()})
		return
	}
	format, p := h.format(r)
	if p != nil {
		writeProblem(sw, *p)
		return
	}
	given := map[string]string{}
	for k, vs := range r.URL.Query() {
		if k == "format" {
			continue
		}
		if len(vs) > 1 {
			writeProblem(sw, Problem{Type: TypeBadParam, Status: http.StatusBadRequest, Param: k, Detail: fmt.Sprintf("parameter %q is given %d times", k, len(vs))})
			return
		}
		given[k] = vs[0]
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.Timeout)
	defer cancel()
	res, err := RunAt(ctx, h.eng, rep.Name, given, h.o.Now())
	if err != nil {
		h.fail(sw, err)
		return
	}
	writeResult(sw, res, format, rep.Name)
}

// Response headers of POST /v1/sql: the row limit the statement ran with and
// whether its result was cut to it ("true" or "false").
const (
	HeaderMaxRows   = "Orderflow-Max-Rows"
	HeaderTruncated = "Orderflow-Truncated"
)

// sqlRequest is POST /v1/sql's JSON body; a text/plain body is the SQL itself.
type sqlRequest struct {
	SQL string `json:"sql"`
}

func (h *handler) sql(w http.ResponseWriter, r *http.Request) {
	sw := &obs.StatusRecorder{ResponseWriter: w}
	defer h.observe("sql", time.Now(), sw)
	format, p := h.format(r)
	if p != nil {
		writeProblem(sw, *p)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(sw, r.Body, h.o.MaxSQLBytes))
	if err != nil {
		writeProblem(sw, Problem{Type: TypeBadSQL, Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the SQL is larger than %d bytes", h.o.MaxSQLBytes)})
		return
	}
	query := string(body)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var req sqlRequest
		dec := json.NewDecoder(strings.NewReader(query))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeProblem(sw, Problem{Type: TypeBadSQL, Status: http.StatusBadRequest, Detail: "body is not {\"sql\": \"...\"}: " + err.Error()})
			return
		}
		query = req.SQL
	}
	if strings.TrimSpace(query) == "" {
		writeProblem(sw, Problem{Type: TypeBadSQL, Status: http.StatusBadRequest, Detail: "no SQL given: POST the statement as text/plain or {\"sql\": \"...\"}"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.Timeout)
	defer cancel()
	res, err := QuerySQL(ctx, h.eng, query, h.o.MaxSQLRows)
	if err != nil {
		h.fail(sw, err)
		return
	}
	// every format says whether the rows were cut: headers (CSV has no room
	// for it in the body), JSON's "truncated", the table's last line
	sw.Header().Set(HeaderMaxRows, strconv.Itoa(res.MaxRows))
	sw.Header().Set(HeaderTruncated, strconv.FormatBool(res.Truncated))
	writeResult(sw, res, format, "")
}

// Exception codes that mean the statement was refused as a write or lacks
// the right (ClickHouse ErrorCodes).
var readOnlyCodes = map[int32]bool{164: true /* READONLY */, 497: true /* ACCESS_DENIED */, 291: true /* DATABASE_ACCESS_DENIED */}

// Exception codes that mean the SQL itself is wrong.
var badSQLCodes = map[int32]bool{
	1: true, 6: true, 27: true, 36: true, 38: true, 41: true, 42: true, 43: true, 44: true, 46: true, 47: true, 48: true,
	53: true, 60: true, 62: true, 70: true, 81: true, 184: true, 215: true, 352: true, 386: true, 395: true /* throwIf */, 456: true, 457: true,
}

// Classify maps an error of Run or QuerySQL to an HTTP problem.
func Classify(err error) Problem {
	var pe *ParamError
	var ex *sinks.Exception
	switch {
	case errors.As(err, &pe):
		return Problem{Type: TypeBadParam, Status: http.StatusBadRequest, Param: pe.Param, Detail: pe.Error()}
	case errors.Is(err, ErrUnknownReport):
		return Problem{Type: TypeUnknownReport, Status: http.StatusNotFound, Detail: err.Error()}
	case errors.As(err, &ex) && readOnlyCodes[ex.Code]:
		return Problem{Type: TypeReadOnly, Title: "Read-only", Status: http.StatusForbidden, Code: ex.Code,
			Detail: "analyst SQL is read-only: only SELECT, SHOW, DESCRIBE, EXPLAIN and similar statements may run (" + firstLine(ex.Message) + ")"}
	case errors.As(err, &ex) && badSQLCodes[ex.Code]:
		return Problem{Type: TypeBadSQL, Status: http.StatusBadRequest, Code: ex.Code, Detail: firstLine(ex.Message)}
	case errors.Is(err, context.DeadlineExceeded):
		return Problem{Type: TypeQueryFailed, Status: http.StatusGatewayTimeout, Detail: "the query did not finish in time"}
	case errors.As(err, &ex):
		return Problem{Type: TypeQueryFailed, Status: http.StatusInternalServerError, Code: ex.Code, Detail: firstLine(ex.Message)}
	}
	return Problem{Type: TypeQueryFailed, Status: http.StatusInternalServerError, Detail: err.Error()}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	p := Classify(err)
	if p.Status >= 500 {
		h.log.Error("query failed", "err", err)
	}
	writeProblem(w, p)
}
