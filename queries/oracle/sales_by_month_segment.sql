SELECT date_trunc('month', placed_at AT TIME ZONE 'UTC')::date AS month, segment,
       count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(total) AS revenue
FROM oracle.sales
WHERE placed_at >= @from::date AND placed_at < @to::date + 1
GROUP BY 1, 2
ORDER BY month, segment COLLATE "C"
