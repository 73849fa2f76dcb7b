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
WITH activity AS
(
    SELECT DISTINCT customer_id, toStartOfMonth(placed_at) AS month
    FROM customer_orders FINAL
    WHERE _is_deleted = 0
      AND status NOT IN ('cancelled', 'refunded')
      AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
),
cohorts AS
(
    SELECT customer_id, min(month) AS cohort_month
    FROM activity
    GROUP BY customer_id
    HAVING cohort_month >= toStartOfMonth({from:Date})
),
sizes AS
(
    SELECT cohort_month, count() AS cohort_size FROM cohorts GROUP BY cohort_month
),
active AS
(
    SELECT c.cohort_month AS cohort_month, toUInt64(dateDiff('month', c.cohort_month, a.month)) AS months_since, count() AS active_customers
    FROM activity AS a
    INNER JOIN cohorts AS c ON c.customer_id = a.customer_id
    GROUP BY cohort_month, months_since
)
SELECT
    a.cohort_month AS cohort_month,
    a.months_since AS months_since,
    a.active_customers AS active_customers,
    s.cohort_size AS cohort_size,
    round(a.active_customers / s.cohort_size, 4) AS retention
FROM active AS a
INNER JOIN sizes AS s ON s.cohort_month = a.cohort_month
ORDER BY cohort_month, months_since
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
