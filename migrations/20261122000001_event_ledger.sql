-- The event ledger: one row per distinct registry event id, exactly as received.
-- Everything else regstat knows is derived from these rows.
CREATE SCHEMA IF NOT EXISTS regstat;

CREATE TABLE regstat.events (
    -- The registry's event id; the registry re-sends it unchanged on every retry, so it is
    -- the key that makes processing idempotent.
    id                  text PRIMARY KEY,
    -- When the registry emitted the event (received_at when the event carries no timestamp).
    occurred_at         timestamptz NOT NULL,
    -- push, pull, mount, delete, or an action this version does not know.
    action              text NOT NULL,
    media_type          text,
    digest              text,
    size                bigint CHECK (size >= 0),
    repository          text,
    tag                 text,
    from_repository     text,
    -- actor.name: the authenticated user, NULL when the registry runs without auth.
    actor               text,
    request_id          text,
    request_addr        text,
    request_host        text,
    request_method      text,
    request_useragent   text,
    source_addr         text,
    source_instance_id  text,
    -- When the receiver accepted the event, and the receiver's request id (AMQP correlation
    -- id): together they lead from a row back to the HTTP request and its log lines.
    received_at         timestamptz NOT NULL,
    correlation_id      text,
    -- When this row was written.
    stored_at           timestamptz NOT NULL DEFAULT now(),
    -- The event exactly as the registry sent it.
    raw                 jsonb NOT NULL
);

CREATE INDEX events_occurred_at_idx ON regstat.events (occurred_at);
CREATE INDEX events_repository_idx ON regstat.events (repository, occurred_at);

COMMENT ON TABLE regstat.events IS
    'Registry notification events, one row per event id, as received (the ledger).';
