SELECT segment,
       count(*) AS shipped_orders,
       round(avg(ship_h), 2) AS ship_avg_hours,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ship_h))::numeric, 2) AS ship_p50_hours,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY ship_h))::numeric, 2) AS ship_p90_hours,
       count(deliver_h) AS delivered_orders,
       round(avg(deliver_h), 2) AS deliver_avg_hours,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY deliver_h))::numeric, 2) AS deliver_p50_hours,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY deliver_h))::numeric, 2) AS deliver_p90_hours
FROM (
    SELECT segment,
           extract(epoch FROM shipped_at - placed_at) / 3600 AS ship_h,
           extract(epoch FROM delivered_at - placed_at) / 3600 AS deliver_h
    FROM oracle.facts
    WHERE shipped_at IS NOT NULL AND placed_at >= @from::date AND placed_at < @to::date + 1
) x
GROUP BY segment
ORDER BY segment COLLATE "C"
