package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the command API.
type Options struct {
	Pool         *pgxpool.Pool
	Token        string // bearer token; empty disables auth
	MaxBodyBytes int64  // largest request body; 1 MiB when 0
	Registerer   prometheus.Registerer
	Log          *slog.Logger
	Now          func() time.Time // clock for command timestamps and campaign windows; time.Now when nil
}

// Server is the command API.
type Server struct {
	pool    *pgxpool.Pool
	token   []byte
	maxBody int64
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	routes  []route
	metrics *metrics
}

// route is one operation of the API; the OpenAPI document lists exactly
// these (a test checks both directions).
type route struct {
	Method  string
	Path    string // net/http pattern path == OpenAPI path template
	Command string // metrics label and OpenAPI operationId (snake_case)
	Auth    bool
	h       http.HandlerFunc // a query, or nil for a command
	c       commandFunc      // a command (runs in one transaction)
}

// New builds the API. Its routes are mounted with Handler.
func New(o Options) (*Server, error) {
	if o.Pool == nil {
		return nil, errors.New("api: nil pool")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{pool: o.Pool, maxBody: o.MaxBodyBytes, log: o.Log, now: o.Now, mux: http.NewServeMux(), metrics: m}
	if o.Token != "" {
		s.token = []byte(o.Token)
	}
	s.routes = []route{
		{"GET", "/openapi.json", "openapi", false, s.openAPI, nil},
		{"POST", "/v1/customers", "create_customer", true, nil, s.createCustomer},
		{"GET", "/v1/customers/{id}", "get_customer", true, s.getCustomer, nil},
		{"PATCH", "/v1/customers/{id}", "update_customer", true, nil, s.updateCustomer},
		{"POST", "/v1/products", "create_product", true, nil, s.createProduct},
		{"GET", "/v1/products/{id}", "get_product", true, s.getProduct, nil},
		{"POST", "/v1/campaigns", "create_campaign", true, nil, s.createCampaign},
		{"GET", "/v1/campaigns/{id}", "get_campaign", true, s.getCampaign, nil},
		{"POST", "/v1/orders", "place_order", true, nil, s.placeOrder},
		{"GET", "/v1/orders/{id}", "get_order", true, s.getOrder, nil},
	}
	for _, a := range orderActions {
		s.routes = append(s.routes, route{"POST", "/v1/orders/{id}/" + a.Name, a.Name + "_order", true, nil, s.transition(a)})
	}
	for _, rt := range s.routes {
		h := http.Handler(rt.h)
		if rt.c != nil {
			h = s.command(rt.Command, rt.c)
		}
		if rt.Auth {
			h = s.auth(h)
		}
		s.mux.Handle(rt.Method+" "+rt.Path, s.instrument(rt.Command, h))
	}
	return s, nil
}

// Handler serves the API: /v1/... and /openapi.json. Unknown routes and
// methods get problem+json 404/405.
func (s *Server) Handler() http.Handler {
	unmatched := s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := s.mux.Handler(r)
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeProblem(w, r, problem(405, TypeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, rec.header.Get("Allow"))))
			return
		}
		writeProblem(w, r, problem(404, TypeNotFound, "no route "+r.Method+" "+r.URL.Path+"; see /openapi.json"))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.mux.Handler(r); pattern == "" {
			unmatched.ServeHTTP(w, r)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Mount registers the API's handler on a mux-like server under the
// patterns that reach it.
func (s *Server) Mount(handle func(pattern string, h http.Handler)) {
	h := s.Handler()
	handle("/v1/", h)
	handle("GET /openapi.json", h)
}

// Ready checks that the database answers.
func (s *Server) Ready(ctx context.Context) error { return s.pool.Ping(ctx) }

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.status = code }

func (s *Server) auth(next http.Handler) http.Handler {
	if s.token == nil {
		return next
	}
	want := sha256.Sum256(s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow"`)
			detail := "missing bearer token: send Authorization: Bearer <token>"
			if ok {
				detail = "wrong bearer token"
			}
			writeProblem(w, r, problem(401, TypeUnauthorized, detail))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	replays  *prometheus.CounterVec
	inflight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_api_requests_total",
			Help: "Command API requests by command and HTTP status code (4xx/5xx are the errors).",
		}, []string{"command", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderflow_api_request_duration_seconds",
			Help:    "Command API request latency by command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"command"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_api_idempotent_replays_total",
			Help: "Requests answered from the idempotency store without running the command again.",
		}, []string{"command"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_api_requests_in_flight",
			Help: "Command API requests being served.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.replays, m.inflight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}

func (s *Server) instrument(command string, next http.Handler) http.Handler {
	latency := s.metrics.duration.WithLabelValues(command)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inflight.Inc()
		sw := &obs.StatusRecorder{ResponseWriter: w}
		defer func() {
			s.metrics.inflight.Dec()
			if sw.Status == 0 {
				sw.Status = http.StatusOK
			}
			latency.Observe(time.Since(start).Seconds())
			s.metrics.requests.WithLabelValues(command, strconv.Itoa(sw.Status)).Inc()
		}()
		next.ServeHTTP(sw, r)
	})
}

// result is a command's successful outcome.
type result struct {
	status int
	body   any
}

// commandFunc runs a command inside tx; a *Problem error is a client error.
type commandFunc func(ctx context.Context, tx pgx.Tx, r *http.Request, body []byte) (result, error)

// MaxIdempotencyKeyLen bounds Idempotency-Key.
const MaxIdempotencyKeyLen = 255

// command wraps a mutating command: it reads the body, runs the command in
// one transaction together with the idempotency-key bookkeeping, and writes
// the response. Nothing is written unless the command succeeds.
func (s *Server) command(name string, fn commandFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, p := s.readBody(w, r)
		if p != nil {
			writeProblem(w, r, p)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		_, hasKey := r.Header["Idempotency-Key"]
		if hasKey && (key == "" || len(key) > MaxIdempotencyKeyLen) {
			writeProblem(w, r, problem(400, TypeInvalidIdemKey, fmt.Sprintf("Idempotency-Key must be 1-%d characters", MaxIdempotencyKeyLen)))
			return
		}
		var status int
		var out []byte
		var replayed bool
		err := s.inTx(r.Context(), func(tx pgx.Tx) error {
			replayed = false
			if key != "" {
				st, resp, found, err := claimKey(r.Context(), tx, key, requestHash(r, body), name)
				if err != nil {
					return err
				}
				if found {
					status, out, replayed = st, resp, true
					return nil
				}
			}
			res, err := fn(r.Context(), tx, r, body)
			if err != nil {
				return err
			}
			b, err := json.Marshal(res.body)
			if err != nil {
				return fmt.Errorf("encode response: %w", err)
			}
			status, out = res.status, append(b, '\n')
			if key != "" {
				if _, err := tx.Exec(r.Context(), `UPDATE orderflow_internal.idempotency_keys SET status_code = $2, response = $3 WHERE key = $1`, key, status, out); err != nil {
					return fmt.Errorf("store idempotent response: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if replayed {
			s.metrics.replays.WithLabelValues(name).Inc()
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = w.Write(out)
	}
}

func requestHash(r *http.Request, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
	var c bytes.Buffer
	if json.Compact(&c, body) == nil {
		body = c.Bytes()
	}
	h.Write(body)
	return h.Sum(nil)
}

// claimKey inserts the key inside the command's transaction. If another
// transaction holds the same key, the INSERT waits for it: when that one
// commits, this one returns its stored response (or a 422 if the request
// differs); when it rolls back, this one owns the key.
func claimKey(ctx context.Context, tx pgx.Tx, key string, hash []byte, cmd string) (status int, resp []byte, found bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO orderflow_internal.idempotency_keys (key, request_hash, command, status_code, response)
		VALUES ($1, $2, $3, 0, '') ON CONFLICT (key) DO NOTHING`, key, hash, cmd)
	if err != nil {
		return 0, nil, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return 0, nil, false, nil
	}
	var stored []byte
	var storedCmd string
	if err := tx.QueryRow(ctx, `SELECT request_hash, command, status_code, response FROM orderflow_internal.idempotency_keys WHERE key = $1`, key).
		Scan(&stored, &storedCmd, &status, &resp); err != nil {
		return 0, nil, false, fmt.Errorf("read idempotency key: %w", err)
	}
	if !bytes.Equal(stored, hash) {
		return 0, nil, false, problem(422, TypeIdempotencyMisuse,
			fmt.Sprintf("Idempotency-Key %q was already used for a different request (%s); use a new key for a new request", key, storedCmd))
	}
	return status, resp, true, nil
}

// inTx runs fn in a read-committed transaction, retrying serialization
// failures and deadlocks a few times.
func (s *Server) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") {
			continue
		}
		return err
	}
	return err
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *Problem) {
	if r.ContentLength > s.maxBody {
		return nil, problem(413, TypeBodyTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.maxBody))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem(413, TypeBodyTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", s.maxBody))
		}
		return nil, problem(400, TypeMalformedJSON, "reading body: "+err.Error())
	}
	if len(bytes.TrimSpace(body)) > 0 {
		ct := r.Header.Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
			return nil, problem(415, TypeUnsupportedMedia, fmt.Sprintf("Content-Type %q: send application/json", ct))
		}
	}
	return body, nil
}

// fail writes err as a problem: *Problem as is, anything else as 500/503.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.As(err, &p) {
		writeProblem(w, r, p)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // client went away; nothing was committed
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) && (pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) || isConnErr(err)) {
		s.log.Warn("database unavailable", "err", err, "path", r.URL.Path)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, problem(503, TypeServiceUnavailable, "the database is unavailable; retry with the same Idempotency-Key"))
		return
	}
	s.log.Error("command failed", "err", err, "method", r.Method, "path", r.URL.Path)
	writeProblem(w, r, problem(500, TypeInternal, "the command failed and wrote nothing; retry with the same Idempotency-Key"))
}

func isConnErr(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.Timeout(err)
}

func pathID(r *http.Request, what string) (int64, *Problem) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, problem(404, TypeNotFound, fmt.Sprintf("no %s with id %q (ids are positive integers)", what, s))
	}
	return id, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// PruneIdempotencyKeys deletes idempotency records older than ttl and
// returns how many it deleted. A retry after ttl runs the command again.
func (s *Server) PruneIdempotencyKeys(ctx context.Context, ttl time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM orderflow_internal.idempotency_keys WHERE created_at < $1`, s.now().Add(-ttl))
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RunPruner prunes expired idempotency keys every interval until ctx ends.
func (s *Server) RunPruner(ctx context.Context, ttl, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n, err := s.PruneIdempotencyKeys(ctx, ttl)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("prune idempotency keys", "err", err)
				continue
			}
			if n > 0 {
				s.log.Info("pruned idempotency keys", "deleted", n, "ttl", ttl)
			}
		}
	}
}
