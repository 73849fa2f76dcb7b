-- 0001: the normalized command-side schema (DESIGN §2) and the command API's
-- idempotency store.
--
-- Every captured table has a bigint identity primary key: capture keys its
-- Kafka events by it. created_at/updated_at are set by the writer (the API's
-- clock, or the workload generator's simulated clock) so that a seeded load is
-- reproducible. Money is numeric(12,2), percentages numeric(5,2), currencies
-- ISO 4217 char(3).

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    email       text        NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1 AND length(email) <= 254),
    phone       text        CHECK (phone ~ '^\+?[0-9][0-9 ()-]{5,30}$'),
    segment     text        NOT NULL CHECK (segment IN ('bronze', 'silver', 'gold', 'platinum')),
    region      text        NOT NULL CHECK (region IN ('north_america', 'europe', 'asia_pacific', 'latin_america', 'middle_east_africa')),
    country     char(2)     NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    city        text        NOT NULL CHECK (length(btrim(city)) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT customers_email_key UNIQUE (email),
    CONSTRAINT customers_updated_after_created CHECK (updated_at >= created_at)
);
COMMENT ON TABLE customers IS 'Shop customers; created_at is the signup time.';

CREATE TABLE products (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         text          NOT NULL CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    name        text          NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    category    text          NOT NULL CHECK (length(btrim(category)) BETWEEN 1 AND 100),
    price       numeric(12,2) NOT NULL CHECK (price > 0),
    currency    char(3)       NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  timestamptz   NOT NULL,
    updated_at  timestamptz   NOT NULL,
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_updated_after_created CHECK (updated_at >= created_at)
);
CREATE INDEX products_category_idx ON products (category);

CREATE TABLE campaigns (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code             text         NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{1,31}$'),
    name             text         NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    starts_at        timestamptz  NOT NULL,
    ends_at          timestamptz  NOT NULL,
    discount_percent numeric(5,2) NOT NULL CHECK (discount_percent > 0 AND discount_percent < 100),
    created_at       timestamptz  NOT NULL,
    updated_at       timestamptz  NOT NULL,
    CONSTRAINT campaigns_code_key UNIQUE (code),
    CONSTRAINT campaigns_window CHECK (ends_at > starts_at),
    CONSTRAINT campaigns_updated_after_created CHECK (updated_at >= created_at)
);
COMMENT ON COLUMN campaigns.ends_at IS 'exclusive: the campaign applies when starts_at <= now < ends_at';

CREATE TABLE orders (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id   bigint        NOT NULL REFERENCES customers (id),
    campaign_id   bigint        REFERENCES campaigns (id),
    status        text          NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
    currency      char(3)       NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal      numeric(12,2) NOT NULL CHECK (subtotal > 0),
    discount      numeric(12,2) NOT NULL CHECK (discount >= 0),
    total         numeric(12,2) NOT NULL CHECK (total >= 0),
    placed_at     timestamptz   NOT NULL,
    paid_at       timestamptz,
    shipped_at    timestamptz,
    delivered_at  timestamptz,
    cancelled_at  timestamptz,
    refunded_at   timestamptz,
    created_at    timestamptz   NOT NULL,
    updated_at    timestamptz   NOT NULL,
    CONSTRAINT orders_total_adds_up CHECK (total = subtotal - discount),
    CONSTRAINT orders_discount_needs_campaign CHECK (discount = 0 OR campaign_id IS NOT NULL),
    -- each status carries the timestamps of the path that led to it
    CONSTRAINT orders_status_times CHECK (
        (paid_at IS NOT NULL) = (status IN ('paid', 'shipped', 'delivered') OR (status IN ('cancelled', 'refunded') AND paid_at IS NOT NULL))
        AND (shipped_at IS NULL OR paid_at IS NOT NULL)
        AND (delivered_at IS NULL OR shipped_at IS NOT NULL)
        AND (status <> 'shipped' OR shipped_at IS NOT NULL)
        AND (status <> 'delivered' OR delivered_at IS NOT NULL)
        AND ((status = 'cancelled') = (cancelled_at IS NOT NULL))
        AND ((status = 'refunded') = (refunded_at IS NOT NULL))
        AND (status <> 'refunded' OR paid_at IS NOT NULL)
        AND (status <> 'cancelled' OR shipped_at IS NULL)
    ),
    CONSTRAINT orders_times_ordered CHECK (
        (paid_at IS NULL OR paid_at >= placed_at)
        AND (shipped_at IS NULL OR shipped_at >= paid_at)
        AND (delivered_at IS NULL OR delivered_at >= shipped_at)
        AND (cancelled_at IS NULL OR cancelled_at >= placed_at)
        AND (refunded_at IS NULL OR refunded_at >= paid_at)
        AND updated_at >= created_at
    )
);
CREATE INDEX orders_customer_placed_idx ON orders (customer_id, placed_at);
CREATE INDEX orders_campaign_idx ON orders (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX orders_status_idx ON orders (status) WHERE status IN ('placed', 'paid', 'shipped');

CREATE TABLE order_items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no     integer       NOT NULL CHECK (line_no >= 1),
    product_id  bigint        NOT NULL REFERENCES products (id),
    quantity    integer       NOT NULL CHECK (quantity > 0 AND quantity <= 1000),
    unit_price  numeric(12,2) NOT NULL CHECK (unit_price > 0),
    discount    numeric(12,2) NOT NULL CHECK (discount >= 0),
    created_at  timestamptz   NOT NULL,
    updated_at  timestamptz   NOT NULL,
    CONSTRAINT order_items_line_key UNIQUE (order_id, line_no),
    CONSTRAINT order_items_discount_le_gross CHECK (discount <= unit_price * quantity),
    CONSTRAINT order_items_updated_after_created CHECK (updated_at >= created_at)
);
CREATE INDEX order_items_product_idx ON order_items (product_id);

-- The command API's idempotency store (not business data; capture need not
-- publish it). A row is written in the same transaction as the command it
-- belongs to, so a key exists exactly when its command committed.
CREATE TABLE orderflow_internal.idempotency_keys (
    key           text        PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea       NOT NULL,
    command       text        NOT NULL,
    status_code   integer     NOT NULL,
    response      bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created_idx ON orderflow_internal.idempotency_keys (created_at);
