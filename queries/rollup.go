package queries

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// The monthly rollups (sinks/chschema 0014-0016) summarize the facts month
// by month: customer_months (customer_orders' sales per customer and the
// customer's attributes as of placement) and product_months (order_lines'
// sales per product). A report declaring "@rollup <name>" reads the months
// of its period whose rollup is current from it and everything else from
// the facts FINAL; the runner passes those months as {rollup_from:Date}
// (first month) and {rollup_to:Date} (first month after). Current means:
// the rollup of the month was computed from exactly the parts the facts'
// month partition has now (same table UUID, same active part names). Part
// names are never reused, so any insert, merge, mutation, partition drop or
// table swap since the refresh makes the month read from the facts again,
// and the answer is the same either way.

// rollup is one monthly rollup table.
type rollup struct {
	name  string // the rollup table
	facts string // the facts table it summarizes (partitioned by toYYYYMM(placed_at))
	// month computes one month's rows from the facts ({month}: a literal
	// first day of a month); the sale predicate is every report's @sale
	month string
}

// rollups are the monthly rollups, by name.
var rollups = map[string]*rollup{
	"customer_months": {name: "customer_months", facts: "customer_orders", month: `SELECT month, customer_id, customer_segment, p.1, p.2, p.3, p.4, p.5, toUInt8(i = 1)
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
	"product_months": {name: "product_months", facts: "order_lines", month: `SELECT toStartOfMonth(placed_at) AS month, product_id,
    toUInt64(sum(product_first)), sum(toInt64(quantity)), sum(line_total)
FROM order_lines FINAL
WHERE _is_deleted = 0
  AND status NOT IN ('cancelled', 'refunded')
  AND placed_at >= toDateTime64(toDate('{month}'), 6, 'UTC')
  AND placed_at < toDateTime64(addMonths(toDate('{month}'), 1), 6, 'UTC')
GROUP BY month, product_id
SETTINGS do_not_merge_across_partitions_select_final = 1`},
}

// rollupNames are the rollups in refresh order.
var rollupNames = []string{"customer_months", "product_months"}

// factsParts fingerprints every month partition of the facts: the table's
// UUID and the sorted names of the partition's active parts.
func (r *rollup) factsParts(ctx context.Context, eng sinks.Engine) (map[string]string, error) {
	fp, err := fingerprints(ctx, eng, `SELECT partition_id, concat(toString((SELECT uuid FROM system.tables WHERE database = currentDatabase() AND name = '`+r.facts+`')),
    ':', arrayStringConcat(arraySort(groupArray(name)), ',')) AS facts_parts
FROM system.parts
WHERE database = currentDatabase() AND table = '`+r.facts+`' AND active
GROUP BY partition_id`)
	if err != nil {
		return nil, fmt.Errorf("rollup %s: read the parts of %s: %w", r.name, r.facts, err)
	}
	return fp, nil
}

// refreshed is the fingerprint each month's latest refresh was computed from.
func (r *rollup) refreshed(ctx context.Context, eng sinks.Engine) (map[string]string, error) {
	fp, err := fingerprints(ctx, eng, "SELECT toString(toYYYYMM(month)), facts_parts FROM rollup_refreshes FINAL WHERE rollup = '"+r.name+"'")
	if err != nil {
		return nil, fmt.Errorf("rollup %s: read rollup_refreshes (run `orderflow migrate`?): %w", r.name, err)
	}
	return fp, nil
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

// fingerprints runs a (partition_id, facts_parts) query.
func fingerprints(ctx context.Context, eng sinks.Engine, query string) (map[string]string, error) {
	res, err := eng.Query(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(res.Rows))
	for _, r := range res.Rows {
		id, _ := r[0].(string)
		fp, _ := r[1].(string)
		out[id] = fp
	}
	return out, nil
}

// RefreshStats is what one RefreshRollup did, over every rollup.
type RefreshStats struct {
	Months  int // rollup months recomputed (or emptied)
	Skipped int // months whose facts changed while being recomputed (left for the next refresh)
	Rows    int // rollup rows written
}

// RefreshRollup recomputes every month of every rollup whose facts changed
// since its last refresh. Each month is computed into a staging table of
// this call and swapped in with REPLACE PARTITION; the month's fingerprint
// is recorded afterwards, so a report never pairs a fingerprint with older
// rollup rows. A month whose facts changed during its own computation is
// left for the next refresh. Run one refresher per database: two
// interleaved refreshes of one month could record one's fingerprint over
// the other's rows.
func RefreshRollup(ctx context.Context, eng sinks.Engine, log *slog.Logger) (RefreshStats, error) {
	var st RefreshStats
	for _, name := range rollupNames {
		if err := rollups[name].refresh(ctx, eng, log, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (r *rollup) refresh(ctx context.Context, eng sinks.Engine, log *slog.Logger, st *RefreshStats) error {
	cur, err := r.factsParts(ctx, eng)
	if err != nil {
		return err
	}
	done, err := r.refreshed(ctx, eng)
	if err != nil {
		return err
	}
	var ids []string
	for id, fp := range cur {
		if done[id] != fp {
			ids = append(ids, id)
		}
	}
	for id, fp := range done {
		if _, ok := cur[id]; !ok && fp != "" {
			ids = append(ids, id) // the facts' month is gone: empty the rollup's
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	staging := r.name + "__refresh_" + hex.EncodeToString(suffix[:])
	if err := eng.Exec(ctx, "CREATE TABLE "+staging+" AS "+r.name); err != nil {
		return fmt.Errorf("rollup %s: create staging table: %w", r.name, err)
	}
	defer func() {
		if err := eng.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+staging); err != nil {
			log.Warn("rollup: drop staging table", "table", staging, "err", err)
		}
	}()
	t0 := time.Now()
	var months, rows, skipped int
	for _, id := range ids {
		month, err := partitionMonth(id)
		if err != nil {
			return fmt.Errorf("rollup %s: %s: %w", r.name, r.facts, err)
		}
		n, ok, err := r.refreshMonth(ctx, eng, staging, id, month, cur[id])
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
	log.Debug("rollup refreshed", "rollup", r.name, "months", months, "rows", rows, "skipped_changing", skipped,
		"took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// refreshMonth recomputes one month from the facts whose fingerprint was fp
// (empty: the month has no facts). ok is false when the facts changed
// meanwhile.
func (r *rollup) refreshMonth(ctx context.Context, eng sinks.Engine, staging, id string, month time.Time, fp string) (rows int, ok bool, err error) {
	day := month.Format(time.DateOnly)
	if fp != "" {
		if err := eng.Exec(ctx, "INSERT INTO "+staging+" "+strings.ReplaceAll(r.month, "{month}", day)); err != nil {
			return 0, false, fmt.Errorf("compute: %w", err)
		}
		defer func() {
			if e := eng.Exec(ctx, "ALTER TABLE "+staging+" DROP PARTITION ID '"+id+"'"); e != nil && err == nil {
				err = fmt.Errorf("clear staging: %w", e)
			}
		}()
		now, err := r.factsParts(ctx, eng)
		if err != nil {
			return 0, false, err
		}
		if now[id] != fp {
			return 0, false, nil
		}
		res, err := eng.Query(ctx, "SELECT count() FROM "+staging+" WHERE toYYYYMM(month) = "+id, nil)
		if err != nil {
			return 0, false, err
		}
		n, _ := res.Rows[0][0].(uint64)
		rows = int(n)
	}
	// a month without sales has nothing to replace with: REPLACE PARTITION
	// from an empty source leaves the old rows, so drop them instead
	swap := "ALTER TABLE " + r.name + " REPLACE PARTITION ID '" + id + "' FROM " + staging
	if rows == 0 {
		swap = "ALTER TABLE " + r.name + " DROP PARTITION ID '" + id + "'"
	}
	if err := eng.Exec(ctx, swap); err != nil {
		return 0, false, fmt.Errorf("swap in: %w", err)
	}
	if err := eng.Exec(ctx, fmt.Sprintf("INSERT INTO rollup_refreshes (rollup, month, facts_parts, rows, refreshed_at) VALUES ('%s', '%s', %s, %d, now64(6))",
		r.name, day, sinks.QuoteString(fp), rows)); err != nil {
		return 0, false, fmt.Errorf("record refresh: %w", err)
	}
	return rows, true, nil
}

// months returns the months [first, end) a report reads from the rollup:
// the longest run of consecutive current months that lie wholly inside
// [from, to] (dates, inclusive; the earliest such run on a tie). With
// allMonths the run may start before from's month (the report reads the
// facts' whole history, e.g. everything before its period). first == end
// when there is none.
func (r *rollup) months(ctx context.Context, eng sinks.Engine, from, to time.Time, allMonths bool) (first, end time.Time, err error) {
	first = time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	if from.Day() != 1 {
		first = first.AddDate(0, 1, 0)
	}
	after := to.AddDate(0, 0, 1)
	last := time.Date(after.Year(), after.Month(), 1, 0, 0, 0, 0, time.UTC) // months before it end by to
	cur, err := r.factsParts(ctx, eng)
	if err != nil {
		return first, first, err
	}
	done, err := r.refreshed(ctx, eng)
	if err != nil {
		return first, first, err
	}
	if allMonths {
		// from the earliest month with facts or a refresh
		for _, m := range []map[string]string{cur, done} {
			for id := range m {
				if t, err := partitionMonth(id); err == nil && t.Before(first) {
					first = t
				}
			}
		}
	}
	if !first.Before(last) {
		return first, first, nil
	}
	bestFirst, bestEnd := first, first
	runStart := first
	for m := first; m.Before(last); m = m.AddDate(0, 1, 0) {
		id := partitionID(m)
		fp, refreshed := done[id]
		if !refreshed || fp != cur[id] {
			runStart = m.AddDate(0, 1, 0)
			continue
		}
		if end := m.AddDate(0, 1, 0); monthsBetween(runStart, end) > monthsBetween(bestFirst, bestEnd) {
			bestFirst, bestEnd = runStart, end
		}
	}
	return bestFirst, bestEnd, nil
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
		seen := map[string]bool{}
		var ids []string
		for _, m := range []map[string]string{cur, done} {
			for id := range m {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			month, err := partitionMonth(id)
			if err != nil {
				return nil, fmt.Errorf("rollup %s: %w", name, err)
			}
			fp, refreshed := done[id]
			out = append(out, RollupMonth{Rollup: name, Month: month, Current: refreshed && fp == cur[id]})
		}
	}
	return out, nil
}
