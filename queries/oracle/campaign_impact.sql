WITH c AS (
    SELECT id, starts_at AS s, ends_at AS e, ends_at - starts_at AS len
    FROM public.campaigns WHERE code = @campaign::text ORDER BY id LIMIT 1
), p AS (
    SELECT c.id, x.period, x.ord, x.ps, x.pe
    FROM c, LATERAL (VALUES ('before', 1, c.s - c.len, c.s), ('during', 2, c.s, c.e), ('after', 3, c.e, c.e + c.len)) AS x (period, ord, ps, pe)
)
SELECT p.period, p.ps AS period_start, p.pe AS period_end,
       count(s.order_id) AS orders,
       count(s.order_id) FILTER (WHERE s.campaign_id = p.id) AS campaign_orders,
       coalesce(sum(s.total), 0) AS revenue,
       CASE WHEN count(s.order_id) = 0 THEN 0 ELSE round(sum(s.total) / count(s.order_id), 2) END AS avg_order_value
FROM p
LEFT JOIN oracle.sales s ON s.placed_at >= p.ps AND s.placed_at < p.pe
GROUP BY p.period, p.ord, p.ps, p.pe
ORDER BY p.ord
