package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client calls the command API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// APIError is a non-retryable answer from the API.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// Do sends a command with an idempotency key, retrying transport errors and
// 5xx answers (safe: the key makes a retry return the first result). out
// receives the JSON answer.
func (c *Client) Do(ctx context.Context, method, path, key string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		res, err := c.HTTP.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = err
			continue
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if res.StatusCode >= 500 {
			last = &APIError{res.StatusCode, string(b)}
			continue
		}
		if res.StatusCode >= 300 {
			return &APIError{res.StatusCode, string(b)}
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("decode %s %s answer: %w", method, path, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%s %s: giving up after retries: %w", method, path, last)
}

type idResp struct {
	ID int64 `json:"id"`
}

// future is an ID known once its create command answered (0 = failed).
type future struct {
	ready chan struct{}
	id    int64
}

// httpRun drives the workload through the API with per-key ordering:
// events of one customer, or of one order, go to the same worker, in
// simulated-time order; an order waits for its customer to exist.
type httpRun struct {
	c        *Client
	gen      *Generator
	ns       string
	prodIDs  []int64
	campCode []string
	custs    []*future
	orders   []*future
	counts   [numKinds]atomic.Int64
	items    atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Pointer[error]
	prog     *progress
	latMu    sync.Mutex
	lat      []time.Duration
}

func (h *httpRun) key(kind string, i int) string { return fmt.Sprintf("load-%s-%s-%d", h.ns, kind, i) }

func (h *httpRun) fail(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.errs.Add(1)
	h.firstErr.CompareAndSwap(nil, &err)
}

// RunHTTP generates the workload and sends it through the command API.
// Campaigns are created with a window around the wall clock (now - 1 h to
// now + 30 days) because the API prices against its own clock; timestamps
// are the API's, so only the direct path reproduces data byte for byte.
func RunHTTP(ctx context.Context, c *Client, prm Params, o Options) (Summary, error) {
	gen, err := NewGenerator(prm)
	if err != nil {
		return Summary{}, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	ns := prm.Namespace
	if ns == "" {
		ns = fmt.Sprintf("s%d", prm.Seed)
	}
	// Idempotency keys must not collide with another run against the same API.
	ns = fmt.Sprintf("%s-%x", ns, rand.Uint64()&0xffffffff)
	h := &httpRun{c: c, gen: gen, ns: ns}
	// Futures exist before any worker starts, so workers only read these slices.
	h.custs = make([]*future, gen.Params().Customers)
	for i := range h.custs {
		h.custs[i] = &future{ready: make(chan struct{})}
	}
	h.orders = make([]*future, gen.Params().Orders)
	for i := range h.orders {
		h.orders[i] = &future{ready: make(chan struct{})}
	}
	start := time.Now()
	if err := h.setup(ctx, o.Concurrency); err != nil {
		return Summary{}, fmt.Errorf("create catalogue: %w", err)
	}
	h.prog = startProgress(o.Progress, gen.Params().Orders)

	queues := make([]chan Event, o.Concurrency)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan Event, 256)
		wg.Add(1)
		go func(q chan Event) {
			defer wg.Done()
			for ev := range q {
				h.apply(ctx, ev)
			}
		}(queues[i])
	}
	sum := Summary{Mode: "http", Seed: gen.Params().Seed, ByKind: map[string]int{}}
	pace := newPacer(o.Rate, o.Duration)
	orders := 0
	var runErr error
dispatch:
	for {
		ev, ok := gen.Next()
		if !ok {
			break
		}
		if sum.SimFrom.IsZero() {
			sum.SimFrom = ev.At
		}
		var shard int
		switch ev.Kind {
		case KCustomer, KCustomerUpdate:
			shard = ev.Customer
		case KOrder:
			shard = ev.Order
			if o.Rate > 0 {
				if runErr = pace.wait(ctx, pace.due(orders)); runErr != nil {
					break dispatch
				}
			}
			orders++
		default:
			shard = ev.Order
		}
		if pace.expired(time.Now()) {
			sum.Stopped = fmt.Sprintf("--duration %s reached", o.Duration)
			break
		}
		sum.SimTo = ev.At
		select {
		case queues[hashShard(ev.Kind, shard, o.Concurrency)] <- ev:
		case <-ctx.Done():
			runErr = ctx.Err()
			break dispatch
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	h.prog.close()
	sum.Elapsed = time.Since(start)
	for k := range h.counts {
		if n := int(h.counts[k].Load()); n > 0 {
			sum.ByKind[Kind(k).String()] = n
			sum.Events += n
		}
	}
	sum.Orders, sum.Items, sum.Errors = int(h.counts[KOrder].Load()), int(h.items.Load()), int(h.errs.Load())
	sum.InFlight, sum.MaxLag = gen.Dropped, pace.maxLag
	sort.Slice(h.lat, func(i, j int) bool { return h.lat[i] < h.lat[j] })
	if n := len(h.lat); n > 0 {
		sum.LatencyP50, sum.LatencyP99 = h.lat[n/2], h.lat[min(n-1, n*99/100)]
	}
	if runErr != nil && errors.Is(runErr, context.Canceled) {
		sum.Stopped = "interrupted"
	}
	if runErr == nil && sum.Errors > 0 {
		runErr = fmt.Errorf("%d commands failed; first: %w", sum.Errors, *h.firstErr.Load())
	}
	return sum, runErr
}

// hashShard keeps a customer's events on one worker and an order's on one
// worker (customers and orders use separate hash spaces).
func hashShard(k Kind, i, n int) int {
	x := uint64(i)*0x9e3779b97f4a7c15 + uint64(min(k, KOrder))
	x ^= x >> 29
	return int(x % uint64(n))
}

func (h *httpRun) setup(ctx context.Context, workers int) error {
	cat := h.gen.Catalogue()
	h.prodIDs = make([]int64, len(cat.Products))
	h.campCode = make([]string, len(cat.Campaigns))
	now := time.Now().UTC().Truncate(time.Second)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < min(workers, 16); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				var err error
				if j < len(cat.Products) {
					p := cat.Products[j]
					var r idResp
					err = h.c.Do(ctx, "POST", "/v1/products", h.key("product", j), map[string]any{
						"sku": p.SKU, "name": p.Name, "category": p.Category, "price": p.Price, "currency": p.Currency}, &r)
					h.prodIDs[j] = r.ID
				} else {
					i := j - len(cat.Products)
					c := cat.Campaigns[i]
					code := c.Code
					if len(code) > 23 {
						code = code[:23]
					}
					code = fmt.Sprintf("%s-%s", code, strings.ToUpper(h.ns[strings.LastIndexByte(h.ns, '-')+1:]))
					err = h.c.Do(ctx, "POST", "/v1/campaigns", h.key("campaign", i), map[string]any{
						"code": code, "name": c.Name, "starts_at": now.Add(-time.Hour), "ends_at": now.Add(30 * 24 * time.Hour),
						"discount_percent": c.Percent}, nil)
					h.campCode[i] = code
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for j := 0; j < len(cat.Products)+len(cat.Campaigns); j++ {
		select {
		case jobs <- j:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func (h *httpRun) wait(ctx context.Context, f *future) int64 {
	select {
	case <-f.ready:
		return f.id
	case <-ctx.Done():
		return 0
	}
}

func (h *httpRun) apply(ctx context.Context, ev Event) {
	if ctx.Err() != nil {
		if ev.Kind == KCustomer {
			close(h.custs[ev.Customer].ready)
		} else if ev.Kind == KOrder {
			close(h.orders[ev.Order].ready)
		}
		return
	}
	var err error
	switch ev.Kind {
	case KCustomer:
		f := h.custs[ev.Customer]
		c := ev.New
		body := map[string]any{"name": c.Name, "email": c.Email, "segment": c.Segment, "region": c.Region, "country": c.Country, "city": c.City}
		if c.Phone != "" {
			body["phone"] = c.Phone
		}
		var r idResp
		err = h.c.Do(ctx, "POST", "/v1/customers", h.key("customer", ev.Customer), body, &r)
		f.id = r.ID
		close(f.ready)
	case KCustomerUpdate:
		id := h.wait(ctx, h.custs[ev.Customer])
		if id == 0 {
			err = fmt.Errorf("customer %d was not created", ev.Customer)
			break
		}
		body := map[string]any{}
		for k, v := range map[string]*string{"segment": ev.Patch.Segment, "region": ev.Patch.Region, "country": ev.Patch.Country, "city": ev.Patch.City} {
			if v != nil {
				body[k] = *v
			}
		}
		err = h.c.Do(ctx, "PATCH", fmt.Sprintf("/v1/customers/%d", id), h.key("customer-update", ev.Customer)+at(ev), body, nil)
	case KOrder:
		f := h.orders[ev.Order]
		cid := h.wait(ctx, h.custs[ev.Customer])
		if cid == 0 {
			close(f.ready)
			err = fmt.Errorf("customer %d was not created", ev.Customer)
			break
		}
		items := make([]map[string]any, len(ev.Items))
		for i, it := range ev.Items {
			items[i] = map[string]any{"product_id": h.prodIDs[it.Product], "quantity": it.Quantity}
		}
		body := map[string]any{"customer_id": cid, "items": items}
		if ev.Campaign >= 0 {
			body["campaign_code"] = h.campCode[ev.Campaign]
		}
		var r idResp
		t0 := time.Now()
		err = h.c.Do(ctx, "POST", "/v1/orders", h.key("order", ev.Order), body, &r)
		if err == nil {
			d := time.Since(t0)
			h.latMu.Lock()
			h.lat = append(h.lat, d)
			h.latMu.Unlock()
			h.items.Add(int64(len(ev.Items)))
			h.prog.done.Add(1)
		}
		f.id = r.ID
		close(f.ready)
	default:
		a, _ := ev.Kind.Action()
		id := h.wait(ctx, h.orders[ev.Order])
		if id == 0 {
			err = fmt.Errorf("order %d was not placed", ev.Order)
			break
		}
		err = h.c.Do(ctx, "POST", fmt.Sprintf("/v1/orders/%d/%s", id, a.Name), h.key(a.Name, ev.Order), nil, nil)
	}
	if err != nil {
		h.fail(fmt.Errorf("%s: %w", ev.Kind, err))
		return
	}
	h.counts[ev.Kind].Add(1)
	h.prog.cmds.Add(1)
}

func at(ev Event) string { return "-" + ev.At.Format("20060102T150405.000000") }
