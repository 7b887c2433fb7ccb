-- The outbound feeds own this schema (docs/decisions/025).
CREATE SCHEMA IF NOT EXISTS carebus_outbound;

-- The delivery log: one row per message a feed owes a receiver, keyed by the event it was
-- built from and the receiver. A message marked delivered is never sent again; one whose answer was lost (a
-- crash between the receiver's ACK and this row) is sent again under the same control id,
-- which the receiver recognises.
CREATE TABLE carebus_outbound.delivery (
    feed          text        NOT NULL,
    event_id      text        NOT NULL,
    -- Which subscriber (master data out sends one change to each); '' for a feed's one.
    receiver      text        NOT NULL DEFAULT '',
    control_id    text        NOT NULL,  -- MSH-10 or Idempotency-Key, derived from event_id
    channel       text        NOT NULL,  -- hl7, fhir, webhook
    site          text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'delivered', 'refused')),
    attempts      integer     NOT NULL DEFAULT 0,
    first_try_at  timestamptz NOT NULL DEFAULT now(),
    last_try_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    answer        text,                  -- AA / AE / AR, the HTTP status, or why none came
    -- Deliveries JetStream made after this one was delivered (a crash before the ack).
    redeliveries  integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (feed, event_id, receiver)
);
CREATE INDEX delivery_status_idx ON carebus_outbound.delivery (feed, status, site);
