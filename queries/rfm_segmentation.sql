-- @title RFM segmentation
-- @question Recency, frequency and monetary scores (1-5) of every customer with a sale in the period, and the number of customers per RFM class.
-- @param from Date = today-12m : first day of the period (UTC, inclusive)
-- @param to Date = today : last day of the period (UTC, inclusive); recency is measured to this day
-- @column r_score UInt8 : recency: days since the last sale <= 30: 5, <= 90: 4, <= 180: 3, <= 365: 2, else 1
-- @column f_score UInt8 : frequency: sales >= 10: 5, >= 5: 4, >= 3: 3, 2: 2, 1: 1
-- @column m_score UInt8 : monetary: revenue >= 5000: 5, >= 2000: 4, >= 1000: 3, >= 250: 2, else 1
-- @column rfm_class String : the three scores, e.g. 5-4-3
-- @column label String : champions (R>=4, F>=4), loyal (R>=3, F>=3), recent (R>=4), at_risk (R<=2, F>=3), hibernating (R<=2), needs_attention
-- @column customers UInt64 : customers in the class
-- @column revenue Decimal : their revenue in the period
-- @column avg_recency_days Float64 : their average days since the last sale, 2 decimals
-- @sale An order counts as a sale when it is not deleted and its status is not cancelled or refunded; its value is its total (after discount) and its date is placed_at (UTC).
-- @rollup customer_months
-- The full months from {rollup_from} up to {rollup_to} come from the monthly
-- rollup (the runner passes the months whose rollup is current and their
-- refresh ids, see queries/rollup.go; pass equal dates and [] to read only
-- the facts), the rest of the period from the facts: one row per sale there,
-- one per customer, month and place in the rollup, aggregated per customer
-- together.
WITH per_customer AS
(
    SELECT
        customer_id,
        dateDiff('day', toDate(max(last_sale_at)), {to:Date}) AS recency_days,
        sum(sales) AS frequency,
        sum(revenue) AS monetary
    FROM
    (
        SELECT customer_id, last_sale_at, toUInt64(sales) AS sales, revenue
        FROM customer_months
        WHERE month >= {rollup_from:Date} AND month < {rollup_to:Date} AND refresh_id IN {rollup_ids:Array(UInt64)}
        UNION ALL
        SELECT customer_id, placed_at AS last_sale_at, toUInt64(1) AS sales, total AS revenue
        FROM customer_orders FINAL
        WHERE _is_deleted = 0
          AND status NOT IN ('cancelled', 'refunded')
          AND placed_at >= toDateTime64({from:Date}, 6, 'UTC')
          AND placed_at < toDateTime64({to:Date} + 1, 6, 'UTC')
          AND (placed_at < toDateTime64({rollup_from:Date}, 6, 'UTC') OR placed_at >= toDateTime64({rollup_to:Date}, 6, 'UTC'))
    )
    GROUP BY customer_id
),
scored AS
(
    SELECT
        toUInt8(multiIf(recency_days <= 30, 5, recency_days <= 90, 4, recency_days <= 180, 3, recency_days <= 365, 2, 1)) AS r_score,
        toUInt8(multiIf(frequency >= 10, 5, frequency >= 5, 4, frequency >= 3, 3, frequency >= 2, 2, 1)) AS f_score,
        toUInt8(multiIf(monetary >= 5000, 5, monetary >= 2000, 4, monetary >= 1000, 3, monetary >= 250, 2, 1)) AS m_score,
        recency_days,
        monetary
    FROM per_customer
)
SELECT
    r_score,
    f_score,
    m_score,
    concat(toString(r_score), '-', toString(f_score), '-', toString(m_score)) AS rfm_class,
    multiIf(r_score >= 4 AND f_score >= 4, 'champions', r_score >= 3 AND f_score >= 3, 'loyal', r_score >= 4, 'recent',
            r_score <= 2 AND f_score >= 3, 'at_risk', r_score <= 2, 'hibernating', 'needs_attention') AS label,
    count() AS customers,
    sum(monetary) AS revenue,
    round(avg(recency_days), 2) AS avg_recency_days
FROM scored
GROUP BY r_score, f_score, m_score
ORDER BY r_score DESC, f_score DESC, m_score DESC
-- every version of an order is in the partition of its placed_at, which never changes: FINAL need not merge across partitions
SETTINGS do_not_merge_across_partitions_select_final = 1
