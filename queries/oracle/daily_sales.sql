SELECT d::date AS day, count(s.order_id) AS orders, count(DISTINCT s.customer_id) AS customers,
       coalesce(sum(s.units), 0) AS units, coalesce(sum(s.total), 0) AS revenue
FROM generate_series(@from::date, @to::date, interval '1 day') AS d
LEFT JOIN oracle.sales s ON (s.placed_at AT TIME ZONE 'UTC')::date = d::date
GROUP BY d
ORDER BY d
