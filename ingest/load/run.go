package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options control a run besides the workload's shape.
type Options struct {
	Rate        float64       // orders per second (open loop); 0 = as fast as possible
	Duration    time.Duration // stop after this long; 0 = when every order is placed
	BatchSize   int           // direct path: events per transaction
	FlushEvery  time.Duration // direct path with a rate: commit a batch at least this often (default 10ms)
	Concurrency int           // HTTP path: parallel clients
	Progress    io.Writer     // progress line target (a terminal); nil = none
}

// Summary is the outcome of a run.
type Summary struct {
	Mode           string
	Seed           uint64
	Elapsed        time.Duration
	Orders         int // orders placed (committed)
	Events         int // commands applied, all kinds
	Items          int
	ByKind         map[string]int
	Errors         int // HTTP path: commands that failed after retries
	InFlight       int // lifecycle steps due after the last order, not applied
	Transactions   int
	SimFrom, SimTo time.Time
	LatencyP50     time.Duration // HTTP path: place_order
	LatencyP99     time.Duration
	MaxLag         time.Duration // open loop: how far behind schedule the run fell
	Stopped        string        // why the run ended early, if it did
}

// OrdersPerSec is the placement throughput.
func (s Summary) OrdersPerSec() float64 { return float64(s.Orders) / s.Elapsed.Seconds() }

// EventsPerSec is the command throughput.
func (s Summary) EventsPerSec() float64 { return float64(s.Events) / s.Elapsed.Seconds() }

// Format writes the summary as a few readable lines.
func (s Summary) Format(w io.Writer) {
	fmt.Fprintf(w, "load %s (seed %d): %d orders, %d commands in %s: %.0f orders/s, %.0f commands/s\n",
		s.Mode, s.Seed, s.Orders, s.Events, s.Elapsed.Round(time.Millisecond), s.OrdersPerSec(), s.EventsPerSec())
	kinds := make([]string, 0, len(s.ByKind))
	for k := range s.ByKind {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kindOrder(kinds[i]) < kindOrder(kinds[j]) })
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s=%d", k, s.ByKind[k]))
	}
	fmt.Fprintf(w, "  commands: %s; order items=%d\n", strings.Join(parts, " "), s.Items)
	if !s.SimFrom.IsZero() {
		fmt.Fprintf(w, "  simulated time %s .. %s; lifecycle steps still in flight at the end: %d\n",
			s.SimFrom.Format(time.DateOnly), s.SimTo.Format(time.DateOnly), s.InFlight)
	}
	if s.Transactions > 0 {
		fmt.Fprintf(w, "  transactions: %d\n", s.Transactions)
	}
	if s.LatencyP50 > 0 {
		fmt.Fprintf(w, "  place_order latency p50 %s p99 %s\n", s.LatencyP50.Round(time.Microsecond), s.LatencyP99.Round(time.Microsecond))
	}
	if s.MaxLag > 0 {
		fmt.Fprintf(w, "  fell behind the --rate schedule by up to %s\n", s.MaxLag.Round(time.Millisecond))
	}
	if s.Errors > 0 {
		fmt.Fprintf(w, "  errors: %d commands failed\n", s.Errors)
	}
	if s.Stopped != "" {
		fmt.Fprintf(w, "  stopped early: %s\n", s.Stopped)
	}
}

func kindOrder(name string) int {
	for i, n := range kindNames {
		if n == name {
			return i
		}
	}
	return len(kindNames)
}

// pacer schedules order i at start + i/rate (open loop: the schedule does
// not wait for earlier orders to finish).
type pacer struct {
	start    time.Time
	rate     float64
	deadline time.Time
	maxLag   time.Duration
}

func newPacer(rate float64, d time.Duration) *pacer {
	p := &pacer{start: time.Now(), rate: rate}
	if d > 0 {
		p.deadline = p.start.Add(d)
	}
	return p
}

// due is when order i should be sent (zero when unpaced).
func (p *pacer) due(i int) time.Time {
	if p.rate <= 0 {
		return time.Time{}
	}
	return p.start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
}

// expired reports whether the --duration is over.
func (p *pacer) expired(now time.Time) bool { return !p.deadline.IsZero() && now.After(p.deadline) }

// wait sleeps until t (or ctx/deadline), recording lateness.
func (p *pacer) wait(ctx context.Context, t time.Time) error {
	now := time.Now()
	if lag := now.Sub(t); lag > p.maxLag {
		p.maxLag = lag
	}
	if !t.After(now) {
		return nil
	}
	if !p.deadline.IsZero() && t.After(p.deadline) {
		t = p.deadline
	}
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// progress prints "done/total, rate, ETA" on one terminal line.
type progress struct {
	w     io.Writer
	total int
	done  atomic.Int64
	cmds  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				p.print()
				fmt.Fprintln(p.w)
				return
			case <-t.C:
				p.print()
			}
		}
	}()
	return p
}

func (p *progress) print() {
	done := p.done.Load()
	el := time.Since(p.start).Seconds()
	rate := float64(done) / el
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(int64(p.total)-done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 0.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	fmt.Fprintf(p.w, "\r\033[Korders %d/%d (%.1f%%)  %.0f orders/s  %.0f commands/s  ETA %s", done, p.total, pct, rate, float64(p.cmds.Load())/el, eta)
}

func (p *progress) close() {
	if p.w != nil {
		close(p.stop)
		p.wg.Wait()
	}
}

// RunDirect generates the workload and writes it to PostgreSQL through
// conn in batches. With truncate it empties the command tables first, so a
// seed reproduces identical tables.
func RunDirect(ctx context.Context, conn *pgx.Conn, prm Params, o Options, truncate bool) (Summary, error) {
	gen, err := NewGenerator(prm)
	if err != nil {
		return Summary{}, err
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 10 * time.Millisecond
	}
	if truncate {
		if err := Truncate(ctx, conn); err != nil {
			return Summary{}, err
		}
	}
	d := NewDirect(conn)
	start := time.Now()
	if err := d.Setup(ctx, gen.Catalogue()); err != nil {
		return Summary{}, fmt.Errorf("create catalogue: %w", err)
	}
	sum := Summary{Mode: "direct", Seed: gen.Params().Seed, ByKind: map[string]int{}}
	pace := newPacer(o.Rate, o.Duration)
	prog := startProgress(o.Progress, gen.Params().Orders)
	batch := make([]Event, 0, o.BatchSize)
	var batchStart time.Time
	orders := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := d.Write(ctx, batch); err != nil {
			return err
		}
		sum.Transactions++
		for _, ev := range batch {
			if ev.Kind == KOrder {
				prog.done.Add(1)
			}
		}
		prog.cmds.Add(int64(len(batch)))
		batch = batch[:0]
		return nil
	}
	var runErr error
	for {
		ev, ok := gen.Next()
		if !ok {
			break
		}
		if sum.SimFrom.IsZero() {
			sum.SimFrom = ev.At
		}
		if ev.Kind == KOrder && o.Rate > 0 {
			// Open loop: wait for the order's slot. A batch collects what
			// is due within FlushEvery, so a high rate still commits in
			// batches while a low rate commits every order promptly.
			due := pace.due(orders)
			if wait := time.Until(due); wait > 0 {
				if len(batch) > 0 && time.Since(batchStart)+wait >= o.FlushEvery {
					if runErr = flush(); runErr != nil {
						break
					}
				}
				if runErr = pace.wait(ctx, due); runErr != nil {
					break
				}
			} else {
				_ = pace.wait(ctx, due) // records lag
			}
			orders++
		}
		if pace.expired(time.Now()) {
			sum.Stopped = fmt.Sprintf("--duration %s reached", o.Duration)
			break
		}
		sum.SimTo = ev.At
		if len(batch) == 0 {
			batchStart = time.Now()
		}
		batch = append(batch, ev)
		if len(batch) >= o.BatchSize || (o.Rate > 0 && time.Since(batchStart) >= o.FlushEvery) {
			if runErr = flush(); runErr != nil {
				break
			}
		}
	}
	if runErr == nil {
		runErr = flush()
	}
	prog.close()
	sum.Elapsed = time.Since(start)
	for k, n := range d.Counts {
		if n > 0 {
			sum.ByKind[Kind(k).String()] = n
		}
	}
	sum.Orders, sum.Items = d.Counts[KOrder], d.Items
	for _, n := range d.Counts {
		sum.Events += n
	}
	sum.InFlight = gen.Dropped
	sum.MaxLag = pace.maxLag
	if runErr != nil && errors.Is(runErr, context.Canceled) {
		sum.Stopped = "interrupted"
	}
	return sum, runErr
}
