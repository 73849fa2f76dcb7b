WITH activity AS (
    SELECT DISTINCT customer_id, date_trunc('month', placed_at AT TIME ZONE 'UTC')::date AS month
    FROM oracle.sales
    WHERE placed_at < @to::date + 1
), cohorts AS (
    SELECT customer_id, min(month) AS cohort_month
    FROM activity
    GROUP BY customer_id
    HAVING min(month) >= date_trunc('month', @from::date)::date
), sizes AS (
    SELECT cohort_month, count(*) AS cohort_size FROM cohorts GROUP BY cohort_month
), active AS (
    SELECT c.cohort_month,
           ((extract(year FROM a.month) - extract(year FROM c.cohort_month)) * 12
             + extract(month FROM a.month) - extract(month FROM c.cohort_month))::int AS months_since,
           count(*) AS active_customers
    FROM activity a
    JOIN cohorts c USING (customer_id)
    GROUP BY 1, 2
)
SELECT a.cohort_month, a.months_since, a.active_customers, s.cohort_size,
       round(a.active_customers::numeric / s.cohort_size, 4) AS retention
FROM active a
JOIN sizes s USING (cohort_month)
ORDER BY 1, 2
