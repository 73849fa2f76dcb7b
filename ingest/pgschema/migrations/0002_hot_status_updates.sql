-- 0002: make order status changes and customer changes HOT updates.
--
-- An order's lifecycle (pay, ship, deliver, cancel, refund) updates only
-- non-indexed columns once orders_status_idx is gone, so PostgreSQL can
-- update the row in place (heap-only tuple) without touching any index,
-- given free space on the page: leave 15 % (orders) and 10 % (customers)
-- free. Nothing in the command API looks orders up by status.
DROP INDEX IF EXISTS orders_status_idx;
ALTER TABLE orders SET (fillfactor = 85);
ALTER TABLE customers SET (fillfactor = 90);
