WITH per_product AS (
    SELECT i.product_id, count(DISTINCT i.order_id) AS orders, sum(i.quantity) AS units,
           sum(i.unit_price * i.quantity - i.discount) AS revenue
    FROM public.order_items i
    JOIN oracle.sales s ON s.order_id = i.order_id
    WHERE s.placed_at >= @from::date AND s.placed_at < @to::date + 1
    GROUP BY i.product_id
), ranked AS (
    SELECT *, row_number() OVER (ORDER BY revenue DESC, orders DESC, product_id) AS rank_by_revenue,
              row_number() OVER (ORDER BY orders DESC, revenue DESC, product_id) AS rank_by_orders
    FROM per_product
)
SELECT r.rank_by_revenue, r.rank_by_orders, r.product_id, p.sku, p.name, p.category, r.orders, r.units, r.revenue
FROM ranked r
JOIN public.products p ON p.id = r.product_id
WHERE r.rank_by_revenue <= @n::int OR r.rank_by_orders <= @n::int
ORDER BY 1, 2
