CREATE TABLE IF NOT EXISTS orders (
    id        bigserial PRIMARY KEY,
    reference text      NOT NULL,
    item      text      NOT NULL,
    quantity  integer   NOT NULL
);
CREATE TABLE IF NOT EXISTS order_events (
    order_id  bigint NOT NULL,
    reference text   NOT NULL,
    kind      text   NOT NULL
);
