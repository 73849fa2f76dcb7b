WITH per_customer AS (
    SELECT customer_id, @to::date - max((placed_at AT TIME ZONE 'UTC')::date) AS recency_days,
           count(*) AS frequency, sum(total) AS monetary
    FROM oracle.sales
    WHERE placed_at >= @from::date AND placed_at < @to::date + 1
    GROUP BY customer_id
), scored AS (
    SELECT CASE WHEN recency_days <= 30 THEN 5 WHEN recency_days <= 90 THEN 4 WHEN recency_days <= 180 THEN 3
                WHEN recency_days <= 365 THEN 2 ELSE 1 END AS r_score,
           CASE WHEN frequency >= 10 THEN 5 WHEN frequency >= 5 THEN 4 WHEN frequency >= 3 THEN 3
                WHEN frequency >= 2 THEN 2 ELSE 1 END AS f_score,
           CASE WHEN monetary >= 5000 THEN 5 WHEN monetary >= 2000 THEN 4 WHEN monetary >= 1000 THEN 3
                WHEN monetary >= 250 THEN 2 ELSE 1 END AS m_score,
           recency_days, monetary
    FROM per_customer
)
SELECT r_score, f_score, m_score, r_score || '-' || f_score || '-' || m_score AS rfm_class,
       CASE WHEN r_score >= 4 AND f_score >= 4 THEN 'champions'
            WHEN r_score >= 3 AND f_score >= 3 THEN 'loyal'
            WHEN r_score >= 4 THEN 'recent'
            WHEN r_score <= 2 AND f_score >= 3 THEN 'at_risk'
            WHEN r_score <= 2 THEN 'hibernating'
            ELSE 'needs_attention' END AS label,
       count(*) AS customers, sum(monetary) AS revenue, round(avg(recency_days), 2) AS avg_recency_days
FROM scored
GROUP BY r_score, f_score, m_score
ORDER BY 1 DESC, 2 DESC, 3 DESC
