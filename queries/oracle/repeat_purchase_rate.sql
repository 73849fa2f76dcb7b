SELECT count(*) AS customers,
       count(*) FILTER (WHERE n >= 2) AS repeat_customers,
       count(*) FILTER (WHERE n = 1) AS one_time_customers,
       CASE WHEN count(*) = 0 THEN 0 ELSE round(count(*) FILTER (WHERE n >= 2)::numeric / count(*), 4) END AS repeat_rate
FROM (
    SELECT customer_id, count(*) AS n
    FROM oracle.sales
    WHERE placed_at >= @from::date AND placed_at < @to::date + 1
    GROUP BY customer_id
) c
