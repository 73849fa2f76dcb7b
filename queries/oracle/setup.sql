-- The oracle's view of the command side (PostgreSQL), installed by the
-- oracle test before any data is written. PostgreSQL keeps only a
-- customer's current attributes, but reports use the customer's attributes
-- as of each order's placement; so triggers record every customer version
-- and, for every order, the customer version in force when the order's
-- transaction commits. That is the query side's definition of "as of
-- placement" (pipeline/doc.go: the versions in force at the commit LSN of
-- the order's INSERT): a change of the customer made later in the same
-- transaction as the order counts, as it shares the order's commit. With
-- one command per transaction (the command API) this is exactly the
-- customer as the order was placed. The tables live in schema oracle, which
-- capture does not publish.
CREATE SCHEMA oracle;
CREATE SEQUENCE oracle.seq;
CREATE TABLE oracle.customer_versions (
    seq         bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    segment     text   NOT NULL,
    region      text   NOT NULL,
    country     text   NOT NULL
);
CREATE TABLE oracle.order_asof (
    order_id     bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    customer_seq bigint NOT NULL,
    txid         bigint NOT NULL
);
CREATE FUNCTION oracle.record_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO oracle.customer_versions VALUES (nextval('oracle.seq'), NEW.id, NEW.segment, NEW.region, NEW.country);
    -- orders placed earlier in this transaction commit with this version
    UPDATE oracle.order_asof SET customer_seq = currval('oracle.seq')
    WHERE customer_id = NEW.id AND txid = txid_current();
    RETURN NULL;
END $$;
CREATE FUNCTION oracle.record_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO oracle.order_asof
    SELECT NEW.id, NEW.customer_id, max(seq), txid_current() FROM oracle.customer_versions WHERE customer_id = NEW.customer_id;
    RETURN NULL;
END $$;
CREATE TRIGGER oracle_customer_versions AFTER INSERT OR UPDATE ON public.customers
    FOR EACH ROW EXECUTE FUNCTION oracle.record_customer();
CREATE TRIGGER oracle_order_asof AFTER INSERT ON public.orders
    FOR EACH ROW EXECUTE FUNCTION oracle.record_order();

-- facts: one row per existing (not deleted) order with the customer's
-- attributes as of placement; sales: the orders that count as a sale.
CREATE VIEW oracle.facts AS
SELECT o.id AS order_id, o.customer_id, o.campaign_id, o.status, o.total, o.placed_at, o.shipped_at, o.delivered_at,
       (SELECT coalesce(sum(i.quantity), 0) FROM public.order_items i WHERE i.order_id = o.id) AS units,
       v.segment, v.region, v.country
FROM public.orders o
JOIN oracle.order_asof a ON a.order_id = o.id
JOIN oracle.customer_versions v ON v.seq = a.customer_seq;

CREATE VIEW oracle.sales AS
SELECT * FROM oracle.facts WHERE status NOT IN ('cancelled', 'refunded');
