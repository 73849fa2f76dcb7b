-- @title Retention cohorts
-- @question Customers grouped by the month of their first sale (cohort) x months since that month: how many still bought, and the share of the cohort.
-- @param from Date = today-12m : cohorts whose first sale is in this month or later (UTC)
-- @param to Date = today : last day considered (UTC, inclusive): cohorts up to its month, activity up to this day
-- @column cohort_month Date : month of the customer's first sale ever (not only within the period)
-- @column months_since UInt64 : 0 = the cohort month itself
-- @column active_customers UInt64 : cohort customers with a sale in that month
-- @column cohort_size UInt64 : customers in the cohort
-- @column retention Float64 : active_customers / cohort_size, 4 decimals
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
-- @rollup customer_months all-months
-- Two branches of per_customer, one of them empty. Without rollup months
-- ({rollup_from} = {rollup_to}) the first reads the facts alone. Otherwise
-- the second reads the months from {rollup_from} up to {rollup_to} from the
-- monthly rollup (the runner passes the longest run of months whose rollup
-- is current, possibly from before the period, and their refresh ids, see
-- queries/rollup.go; pass equal dates and [] to read only the facts) and
-- every other month from the facts.
WITH per_customer AS
(
    -- Only customers whose first sale is in {from}'s month or later form a
    -- cohort: those with a sale before that month are left out up front
    -- (a set of customer ids from the older facts), so the per-customer
    -- aggregation runs on the period's facts and on the cohort customers
    -- alone instead of on every customer's whole history. For the others
    -- the first sale is in the period: the first month, and the months from
    -- {from}'s month on in which they bought as a bit mask (bit k = k months
    -- after it; a period spans at most 256 months).
    SELECT
        customer_id,
        min(toStartOfMonth(placed_at)) AS cohort_month,
        groupBitOr(bitShiftLeft(toUInt256(1), toUInt8(dateDiff('month', toStartOfMonth({from:Date}), toStartOfMonth(placed_at))))) AS months
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at >= toDateTime64(toStartOfMonth({from:Date}), 6, 'UTC')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
      AND customer_id NOT IN
      (
          SELECT customer_id
          FROM customer_orders FINAL
          WHERE _is_deleted = 0
            AND status NOT IN ('cancelled', 'refunded')
            AND placed_at < toDateTime64(toStartOfMonth({from:Date}), 6, 'UTC')
      )
      AND {rollup_from:Date} = {rollup_to:Date}
      AND throwIf(dateDiff('month', toStartOfMonth({from:Date}), toStartOfMonth({to:Date})) > 255,
                  'retention_cohorts: from and to may be at most 255 months apart') = 0
    GROUP BY customer_id
    UNION ALL
    -- the same from the rollup months and the facts of the other months
    SELECT
        customer_id,
        min(month) AS cohort_month,
        groupBitOr(bitShiftLeft(toUInt256(1), toUInt8(dateDiff('month', toStartOfMonth({from:Date}), month)))) AS months
    FROM
    (
        SELECT customer_id, month
        FROM customer_months
        WHERE month >= {rollup_from:Date} AND month < {rollup_to:Date} AND refresh_id IN {rollup_ids:Array(UInt64)}
          AND month >= toStartOfMonth({from:Date})
        UNION ALL
        SELECT customer_id, toStartOfMonth(placed_at) AS month
        FROM customer_orders FINAL
        WHERE _is_deleted = 0
          AND status NOT IN ('cancelled', 'refunded')
          AND placed_at >= toDateTime64(toStartOfMonth({from:Date}), 6, 'UTC')
          AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
          AND (placed_at < toDateTime64({rollup_from:Date}, 6, 'UTC') OR placed_at >= toDateTime64({rollup_to:Date}, 6, 'UTC'))
    )
    WHERE {rollup_from:Date} < {rollup_to:Date}
      AND customer_id NOT IN
      (
          SELECT customer_id
          FROM customer_months
          WHERE month >= {rollup_from:Date} AND month < {rollup_to:Date} AND refresh_id IN {rollup_ids:Array(UInt64)}
            AND month < toStartOfMonth({from:Date})
          UNION ALL
          SELECT customer_id
          FROM customer_orders FINAL
          WHERE _is_deleted = 0
            AND status NOT IN ('cancelled', 'refunded')
            AND placed_at < toDateTime64(toStartOfMonth({from:Date}), 6, 'UTC')
            AND (placed_at < toDateTime64({rollup_from:Date}, 6, 'UTC') OR placed_at >= toDateTime64({rollup_to:Date}, 6, 'UTC'))
      )
      AND throwIf(dateDiff('month', toStartOfMonth({from:Date}), toStartOfMonth({to:Date})) > 255,
                  'retention_cohorts: from and to may be at most 255 months apart') = 0
    GROUP BY customer_id
),
active AS
(
    SELECT
        cohort_month,
        toUInt64(bit - dateDiff('month', toStartOfMonth({from:Date}), cohort_month)) AS months_since,
        count() AS active_customers
    FROM
    (
        SELECT cohort_month, arrayJoin(bitPositionsToArray(months)) AS bit
        FROM per_customer
    )
    GROUP BY cohort_month, months_since
)
SELECT
    cohort_month,
    months_since,
    active_customers,
    -- every cohort customer is active in month 0
    toUInt64(sum(if(months_since = 0, active_customers, 0)) OVER (PARTITION BY cohort_month)) AS cohort_size,
    round(active_customers / cohort_size, 4) AS retention
FROM active
ORDER BY cohort_month, months_since
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
