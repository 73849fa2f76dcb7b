SELECT segment, sum(total) AS revenue, count(*) AS orders, count(DISTINCT customer_id) AS customers,
       round(sum(total) / count(*), 2) AS avg_order_value,
       round(count(*)::numeric / count(DISTINCT customer_id), 2) AS orders_per_customer
FROM oracle.sales
WHERE placed_at >= @from::date AND placed_at < @to::date + 1
GROUP BY segment
ORDER BY revenue DESC, segment COLLATE "C"
