SELECT region, country, count(DISTINCT customer_id) AS customers, count(*) AS orders, sum(total) AS revenue,
       round(sum(total) / count(*), 2) AS avg_order_value,
       round(sum(total) / sum(sum(total)) OVER (), 4) AS revenue_share,
       count(*) FILTER (WHERE segment = 'bronze') AS bronze_orders,
       count(*) FILTER (WHERE segment = 'silver') AS silver_orders,
       count(*) FILTER (WHERE segment = 'gold') AS gold_orders,
       count(*) FILTER (WHERE segment = 'platinum') AS platinum_orders
FROM oracle.sales
WHERE placed_at >= @from::date AND placed_at < @to::date + 1
GROUP BY region, country
ORDER BY revenue DESC, region COLLATE "C", country COLLATE "C"
