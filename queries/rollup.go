package queries

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// The monthly rollups (sinks/chschema 0014-0017) summarize the facts month
// by month: customer_months (customer_orders' sales per customer and the
// customer's attributes as of placement), place_months (the same per
// segment, region and country, customers as a bitmap) and product_months
// (order_lines' sales per product). A report declaring "@rollup <name>" reads the months
// of its period whose rollup is current from it and everything else from
// the facts FINAL; the runner passes those months as {rollup_from:Date}
// (first month), {rollup_to:Date} (first month after) and
// {rollup_ids:Array(UInt64)} (the refreshes to read).
//
// Each refresh of a month writes a new generation: its rows carry a fresh
// refresh_id, which is part of the partition key, and rollup_refreshes
// records it with the fingerprint of the facts' month partition it was
// computed from (the facts table's UUID and the sorted names of the
// partition's active parts). A month is current while that fingerprint is
// still the facts' one. Part names are never reused, so any insert, merge,
// mutation, partition drop or table swap since the refresh makes the month
// read from the facts again, and the answer is the same either way. A
// generation is never modified: superseded ones are dropped a grace period
// after their successor was recorded (a report that chose one just before
// still finds it), unrecorded ones (a refresh that failed or stopped) at
// the next refresh. Nothing here relies on REPLACE PARTITION, whose swap
// chDB 26.5 undoes after a restart (the replaced parts come back).

// supersededGrace is how long a superseded generation stays readable (a
// variable for the tests).
var supersededGrace = time.Minute

// rollup is one monthly rollup table.
type rollup struct {
	name  string // the rollup table
	facts string // the facts table it summarizes (partitioned by toYYYYMM(placed_at))
	// month computes one month's rows from the facts, in the order of
	// columns ({month}: a literal first day of a month, {refresh_id}: the
	// generation); the sale predicate is every report's @sale
	month   string
	columns string
}

// rollups are the monthly rollups, by name.
var rollups = map[string]*rollup{
	"customer_months": {name: "customer_months", facts: "customer_orders",
		columns: "month, customer_id, customer_segment, customer_region, customer_country, sales, revenue, last_sale_at, first_in_segment, refresh_id",
		month: `SELECT month, customer_id, customer_segment, p.1, p.2, p.3, p.4, p.5, toUInt8(i = 1), toUInt64({refresh_id})
FROM
(
    SELECT month, customer_id, customer_segment,
        groupArray((customer_region, customer_country, sales, revenue, last_sale_at)) AS places
    FROM
    (
        SELECT toStartOfMonth(placed_at) AS month, customer_id, customer_segment, customer_region, customer_country,
            toUInt32(count()) AS sales, sum(total) AS revenue, max(placed_at) AS last_sale_at
        FROM customer_orders FINAL
        WHERE _is_deleted = 0
          AND status NOT IN ('cancelled', 'refunded')
          AND placed_at >= toDateTime64(toDate('{month}'), 6, 'UTC')
          AND placed_at < toDateTime64(addMonths(toDate('{month}'), 1), 6, 'UTC')
        GROUP BY month, customer_id, customer_segment, customer_region, customer_country
    )
    GROUP BY month, customer_id, customer_segment
)
ARRAY JOIN places AS p, arrayEnumerate(places) AS i
SETTINGS do_not_merge_across_partitions_select_final = 1`},
	"place_months": {name: "place_months", facts: "customer_orders",
		columns: "month, customer_segment, customer_region, customer_country, sales, revenue, customers, refresh_id",
		month: `SELECT toStartOfMonth(placed_at) AS month, customer_segment, customer_region, customer_country,
    count(), sum(total), groupBitmapState(toUInt64(customer_id)), toUInt64({refresh_id})
FROM customer_orders FINAL
WHERE _is_deleted = 0
  AND status NOT IN ('cancelled', 'refunded')
  AND placed_at >= toDateTime64(toDate('{month}'), 6, 'UTC')
  AND placed_at < toDateTime64(addMonths(toDate('{month}'), 1), 6, 'UTC')
GROUP BY month, customer_segment, customer_region, customer_country
SETTINGS do_not_merge_across_partitions_select_final = 1`},
	"product_months": {name: "product_months", facts: "order_lines",
		columns: "month, product_id, orders, units, revenue, refresh_id",
		month: `SELECT toStartOfMonth(placed_at) AS month, product_id,
    toUInt64(sum(product_first)), sum(toInt64(quantity)), sum(line_total), toUInt64({refresh_id})
FROM order_lines FINAL
WHERE _is_deleted = 0
  AND status NOT IN ('cancelled', 'refunded')
  AND placed_at >= toDateTime64(toDate('{month}'), 6, 'UTC')
  AND placed_at < toDateTime64(addMonths(toDate('{month}'), 1), 6, 'UTC')
GROUP BY month, product_id
SETTINGS do_not_merge_across_partitions_select_final = 1`},
}

// rollupNames are the rollups in refresh order.
var rollupNames = []string{"customer_months", "place_months", "product_months"}

// factsParts fingerprints the facts' month partitions: the table's UUID and
// the sorted names of the partition's active parts.
func (r *rollup) factsParts(ctx context.Context, eng sinks.Engine) (map[string]string, error) {
	fp, _, err := r.factsPartsAges(ctx, eng)
	return fp, err
}

// factsPartsAges is factsParts, and how long ago each partition last
// changed (its newest part), by the engine's clock.
func (r *rollup) factsPartsAges(ctx context.Context, eng sinks.Engine) (map[string]string, map[string]time.Duration, error) {
	res, err := eng.Query(ctx, `SELECT partition_id, concat(toString((SELECT uuid FROM system.tables WHERE database = currentDatabase() AND name = '`+r.facts+`')),
    ':', arrayStringConcat(arraySort(groupArray(name)), ',')), toInt64(dateDiff('second', max(modification_time), now()))
FROM system.parts
WHERE database = currentDatabase() AND table = '`+r.facts+`' AND active
GROUP BY partition_id`, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("rollup %s: read the parts of %s: %w", r.name, r.facts, err)
	}
	fps := make(map[string]string, len(res.Rows))
	ages := make(map[string]time.Duration, len(res.Rows))
	for _, row := range res.Rows {
		fps[row[0].(string)] = row[1].(string)
		age, _ := row[2].(int64)
		ages[row[0].(string)] = time.Duration(age) * time.Second
	}
	return fps, ages, nil
}

// refresh is a month's latest recorded refresh.
type refresh struct {
	facts string        // the facts' fingerprint it was computed from
	id    uint64        // its generation
	age   time.Duration // since it was recorded, by the engine's clock
}

// refreshed is each month's latest refresh, by facts partition id.
func (r *rollup) refreshed(ctx context.Context, eng sinks.Engine) (map[string]refresh, error) {
	res, err := eng.Query(ctx, "SELECT toString(toYYYYMM(month)), facts_parts, refresh_id, toInt64(dateDiff('microsecond', refreshed_at, now64(6))) FROM rollup_refreshes FINAL WHERE rollup = {r:String}",
		map[string]any{"r": r.name})
	if err != nil {
		return nil, fmt.Errorf("rollup %s: read rollup_refreshes (run `orderflow migrate`?): %w", r.name, err)
	}
	out := make(map[string]refresh, len(res.Rows))
	for _, row := range res.Rows {
		age, _ := row[3].(int64)
		out[row[0].(string)] = refresh{facts: row[1].(string), id: row[2].(uint64), age: time.Duration(age) * time.Microsecond}
	}
	return out, nil
}

// generations lists the rollup's partitions: facts partition id -> refresh ids.
func (r *rollup) generations(ctx context.Context, eng sinks.Engine) (map[string][]uint64, error) {
	res, err := eng.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() AND table = {t:String} AND active",
		map[string]any{"t": r.name})
	if err != nil {
		return nil, fmt.Errorf("rollup %s: read its partitions: %w", r.name, err)
	}
	out := map[string][]uint64{}
	for _, row := range res.Rows {
		pid := row[0].(string)
		month, id, ok := strings.Cut(pid, "-")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("rollup %s: partition %q is not <YYYYMM>-<refresh id> (migrations 0014, 0015, 0017)", r.name, pid)
		}
		out[month] = append(out[month], n)
	}
	return out, nil
}

// partitionMonth parses a facts partition id (toYYYYMM).
func partitionMonth(id string) (time.Time, error) {
	t, err := time.Parse("200601", id)
	if err != nil {
		return time.Time{}, fmt.Errorf("partition id %q is not YYYYMM: %w", id, err)
	}
	return t, nil
}

func partitionID(month time.Time) string { return month.UTC().Format("200601") }

// RefreshStats is what one RefreshRollup did, over every rollup.
type RefreshStats struct {
	Months  int // rollup months recomputed
	Skipped int // months whose facts changed while being recomputed (left for the next refresh)
	Rows    int // rollup rows written
	Dropped int // superseded or unrecorded generations dropped
	// Unsettled are changed months left alone because their facts changed
	// within the settle time (RefreshRollupSettled)
	Unsettled int
}

// RefreshRollup recomputes every month of every rollup whose facts changed
// since its last refresh, as a new generation, and drops the generations
// nothing reads any more. A month whose facts changed during its own
// computation is left for the next refresh. Run one refresher per database:
// a refresher drops the generations no refresh recorded, which includes
// another refresher's unfinished ones.
func RefreshRollup(ctx context.Context, eng sinks.Engine, log *slog.Logger) (RefreshStats, error) {
	return RefreshRollupSettled(ctx, eng, log, 0)
}

// RefreshRollupSettled is RefreshRollup for the months whose facts have not
// changed for settle: a month still being written (the current month, or
// every month while the transformer drains a backlog) would only be
// recomputed again at the next refresh. Its reports read it from the facts
// meanwhile.
func RefreshRollupSettled(ctx context.Context, eng sinks.Engine, log *slog.Logger, settle time.Duration) (RefreshStats, error) {
	var st RefreshStats
	for _, name := range rollupNames {
		if err := rollups[name].refresh(ctx, eng, log, settle, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// lastRefreshID makes refresh ids unique and increasing within a process.
var lastRefreshID atomic.Uint64

// newRefreshID is a refresh id: the current Unix time in microseconds (so
// ids grow across restarts too), unique within the process.
func newRefreshID() uint64 {
	for {
		last := lastRefreshID.Load()
		id := max(uint64(time.Now().UnixMicro()), last+1)
		if lastRefreshID.CompareAndSwap(last, id) {
			return id
		}
	}
}

func (r *rollup) refresh(ctx context.Context, eng sinks.Engine, log *slog.Logger, settle time.Duration, st *RefreshStats) error {
	cur, ages, err := r.factsPartsAges(ctx, eng)
	if err != nil {
		return err
	}
	done, err := r.refreshed(ctx, eng)
	if err != nil {
		return err
	}
	gens, err := r.generations(ctx, eng)
	if err != nil {
		return err
	}
	// generations nothing reads: unrecorded ones, and superseded ones once
	// their successor has been readable for the grace period
	for id, ids := range gens {
		last, recorded := done[id]
		for _, g := range ids {
			if recorded && (g == last.id || last.age < supersededGrace && g < last.id) {
				continue
			}
			if err := eng.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION ID '%s-%d'", r.name, id, g)); err != nil {
				return fmt.Errorf("rollup %s: drop generation %s-%d: %w", r.name, id, g, err)
			}
			st.Dropped++
		}
	}
	var ids []string
	for id, fp := range cur {
		if last, ok := done[id]; !ok || last.facts != fp {
			if ages[id] < settle {
				st.Unsettled++
				continue
			}
			ids = append(ids, id)
		}
	}
	for id, last := range done {
		if _, ok := cur[id]; !ok && last.facts != "" {
			ids = append(ids, id) // the facts' month is gone: record it empty
		}
	}
	sort.Strings(ids)
	t0 := time.Now()
	var months, rows, skipped int
	for _, id := range ids {
		month, err := partitionMonth(id)
		if err != nil {
			return fmt.Errorf("rollup %s: %s: %w", r.name, r.facts, err)
		}
		n, ok, err := r.refreshMonth(ctx, eng, id, month, cur[id])
		if err != nil {
			return fmt.Errorf("rollup %s: month %s: %w", r.name, month.Format("2006-01"), err)
		}
		if !ok {
			skipped++
			continue
		}
		months++
		rows += n
	}
	st.Months += months
	st.Rows += rows
	st.Skipped += skipped
	if len(ids) > 0 {
		log.Debug("rollup refreshed", "rollup", r.name, "months", months, "rows", rows, "skipped_changing", skipped,
			"took", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// refreshMonth computes one month from the facts whose fingerprint was fp
// (empty: the month has no facts) as a new generation and records it. ok
// is false when the facts changed meanwhile (the generation is dropped).
func (r *rollup) refreshMonth(ctx context.Context, eng sinks.Engine, id string, month time.Time, fp string) (rows int, ok bool, err error) {
	day := month.Format(time.DateOnly)
	gen := newRefreshID()
	if fp != "" {
		q := strings.NewReplacer("{month}", day, "{refresh_id}", strconv.FormatUint(gen, 10)).Replace(r.month)
		if err := eng.Exec(ctx, "INSERT INTO "+r.name+" ("+r.columns+") "+q); err != nil {
			return 0, false, fmt.Errorf("compute: %w", err)
		}
		drop := func() error {
			return eng.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION ID '%s-%d'", r.name, id, gen))
		}
		now, err := r.factsParts(ctx, eng)
		if err != nil {
			return 0, false, errors.Join(err, drop())
		}
		if now[id] != fp {
			return 0, false, drop()
		}
		res, err := eng.Query(ctx, "SELECT count() FROM "+r.name+" WHERE refresh_id = {g:UInt64}", map[string]any{"g": gen})
		if err != nil {
			return 0, false, errors.Join(err, drop())
		}
		n, _ := res.Rows[0][0].(uint64)
		rows = int(n)
	}
	if err := eng.Exec(ctx, fmt.Sprintf("INSERT INTO rollup_refreshes (rollup, month, facts_parts, refresh_id, rows, refreshed_at) VALUES ('%s', '%s', %s, %d, %d, now64(6))",
		r.name, day, sinks.QuoteString(fp), gen, rows)); err != nil {
		return 0, false, fmt.Errorf("record refresh: %w", err)
	}
	return rows, true, nil
}

// months returns the months [first, end) a report reads from the rollup,
// and the generations to read: the longest run of consecutive current
// months that lie wholly inside [from, to] (dates, inclusive; the earliest
// such run on a tie). With allMonths the run may start before from's month
// (the report reads the facts' whole history, e.g. everything before its
// period). first == end when there is none.
func (r *rollup) months(ctx context.Context, eng sinks.Engine, from, to time.Time, allMonths bool) (first, end time.Time, gens []uint64, err error) {
	first = time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	if from.Day() != 1 {
		first = first.AddDate(0, 1, 0)
	}
	after := to.AddDate(0, 0, 1)
	last := time.Date(after.Year(), after.Month(), 1, 0, 0, 0, 0, time.UTC) // months before it end by to
	cur, err := r.factsParts(ctx, eng)
	if err != nil {
		return first, first, nil, err
	}
	done, err := r.refreshed(ctx, eng)
	if err != nil {
		return first, first, nil, err
	}
	if allMonths {
		// from the earliest month with facts or a refresh
		for id := range cur {
			if t, err := partitionMonth(id); err == nil && t.Before(first) {
				first = t
			}
		}
		for id := range done {
			if t, err := partitionMonth(id); err == nil && t.Before(first) {
				first = t
			}
		}
	}
	if !first.Before(last) {
		return first, first, nil, nil
	}
	bestFirst, bestEnd := first, first
	runStart := first
	for m := first; m.Before(last); m = m.AddDate(0, 1, 0) {
		id := partitionID(m)
		if d, ok := done[id]; !ok || d.facts != cur[id] {
			runStart = m.AddDate(0, 1, 0)
			continue
		}
		if end := m.AddDate(0, 1, 0); monthsBetween(runStart, end) > monthsBetween(bestFirst, bestEnd) {
			bestFirst, bestEnd = runStart, end
		}
	}
	for m := bestFirst; m.Before(bestEnd); m = m.AddDate(0, 1, 0) {
		gens = append(gens, done[partitionID(m)].id)
	}
	return bestFirst, bestEnd, gens, nil
}

func monthsBetween(a, b time.Time) int {
	return (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
}

// RollupMonth is one month of one rollup, as RollupStatus sees it.
type RollupMonth struct {
	Rollup  string
	Month   time.Time
	Current bool // the reports read this month from the rollup
}

// RollupStatus lists every month that has facts or a refresh, per rollup,
// and whether its rollup is current.
func RollupStatus(ctx context.Context, eng sinks.Engine) ([]RollupMonth, error) {
	var out []RollupMonth
	for _, name := range rollupNames {
		r := rollups[name]
		cur, err := r.factsParts(ctx, eng)
		if err != nil {
			return nil, err
		}
		done, err := r.refreshed(ctx, eng)
		if err != nil {
			return nil, err
		}
		ids := make([]string, 0, len(cur)+len(done))
		for id := range cur {
			ids = append(ids, id)
		}
		for id := range done {
			if _, ok := cur[id]; !ok {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			month, err := partitionMonth(id)
			if err != nil {
				return nil, fmt.Errorf("rollup %s: %w", name, err)
			}
			d, ok := done[id]
			out = append(out, RollupMonth{Rollup: name, Month: month, Current: ok && d.facts == cur[id]})
		}
	}
	return out, nil
}
