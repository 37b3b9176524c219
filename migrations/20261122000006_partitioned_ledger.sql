-- The ledger, range-partitioned by received_at, so that old events can be dropped a whole
-- partition at a time (`regstat ledger prune`, `ledger.retention_days`). docs/MODEL.md
-- ("Ledger retention") gives the design; migrations/README.md what upgrading involves.
--
-- A primary key of a partitioned table must include the partition key, so `id` alone can no
-- longer be unique in regstat.events. Uniqueness of an event id is decided in one place,
-- regstat.event_ids, by the same statement (and transaction) that writes the ledger row and
-- whose result decides which events' effects are applied.
--
-- This migration rewrites the ledger in place: old table renamed, partitioned table created
-- with monthly partitions covering every stored event and the next three months, rows
-- copied, indexes built, dependent views recreated, old table dropped. It takes time and
-- space in proportion to the ledger; workers wait for it (sqlx's advisory lock) and events
-- wait in RabbitMQ meanwhile.

-- 1. Event ids: the one place an id's uniqueness is decided.
CREATE TABLE regstat.event_ids (
    -- The registry's event id.
    id                  text PRIMARY KEY,
    -- When the receiver accepted the copy that was recorded (as in its ledger row): what the
    -- dedupe window is measured on.
    received_at         timestamptz NOT NULL
);
CREATE INDEX event_ids_received_at_idx ON regstat.event_ids (received_at);

COMMENT ON TABLE regstat.event_ids IS
    'Every recorded event id: inserting here (ON CONFLICT DO NOTHING) decides whether an event '
    'is new. Kept at least ledger.dedupe_days and at least as long as the ledger row.';

-- 2. The dedupe horizon: ids of events received before it have been forgotten, so whether
-- such an event is new can no longer be decided.
CREATE TABLE regstat.dedupe_horizon (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Ids received before this time may have been pruned from regstat.event_ids.
    forgotten_before    timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO regstat.dedupe_horizon DEFAULT VALUES;

-- An event received before the horizon whose id is not (or no longer) in event_ids may have
-- been recorded already: it is refused rather than counted a second time. Only rows actually
-- inserted are checked, so a copy whose id is still known stays a harmless duplicate.
-- SQLSTATE RS001 (regstat_worker::ledger::BEYOND_DEDUPE_HORIZON) names this refusal.
CREATE FUNCTION regstat.refuse_forgotten_event_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    stale record;
BEGIN
    SELECT n.id, n.received_at, h.forgotten_before INTO stale
    FROM inserted n, regstat.dedupe_horizon h
    WHERE n.received_at < h.forgotten_before
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event % was received at %, before the dedupe horizon %: its id may have been recorded and forgotten since, so it is not recorded again',
            stale.id, stale.received_at, stale.forgotten_before
            USING ERRCODE = 'RS001', HINT = 'See "Ledger retention" in docs/MODEL.md.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER event_ids_refuse_forgotten
    AFTER INSERT ON regstat.event_ids
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION regstat.refuse_forgotten_event_ids();

-- 3. The partitioned ledger.
DROP VIEW regstat.report_history;
ALTER TABLE regstat.events RENAME TO events_unpartitioned;
ALTER INDEX regstat.events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX regstat.events_occurred_at_idx RENAME TO events_unpartitioned_occurred_at_idx;
ALTER INDEX regstat.events_repository_idx RENAME TO events_unpartitioned_repository_idx;

CREATE TABLE regstat.events (
    -- The registry's event id. Unique: regstat.event_ids admits each id once, and only
    -- admitted ids get a row here.
    id                  text NOT NULL,
    -- When the registry emitted the event (received_at when the event carries no timestamp).
    occurred_at         timestamptz NOT NULL,
    -- push, pull, mount, delete, or an action this version does not know.
    action              text NOT NULL,
    media_type          text,
    digest              text,
    size                bigint CONSTRAINT events_size_check CHECK (size >= 0),
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
    -- When the receiver accepted the event (the partition key), and the receiver's request id
    -- (AMQP correlation id): together they lead from a row back to the HTTP request and its
    -- log lines.
    received_at         timestamptz NOT NULL,
    correlation_id      text,
    -- When this row was written.
    stored_at           timestamptz NOT NULL DEFAULT now(),
    -- The event exactly as the registry sent it.
    raw                 jsonb NOT NULL
) PARTITION BY RANGE (received_at);

-- Anything outside every range partition lands here, so an insert never fails for want of a
-- partition. `regstat-worker` reports its rows (ledger maintenance) and moves them into a
-- partition when it creates one covering them.
CREATE TABLE regstat.events_default PARTITION OF regstat.events DEFAULT;

-- Monthly partitions (UTC) from the oldest stored event to three months ahead, named after
-- their first day: events_pYYYYMMDD. The worker creates later ones (ledger.partition_interval,
-- ledger.partitions_ahead).
DO $$
DECLARE
    -- UTC wall-clock times (timestamp without time zone): month arithmetic must not depend on
    -- the session's TimeZone.
    first_month timestamp;
    last_month timestamp;
    month_start timestamp;
BEGIN
    SELECT date_trunc('month', LEAST(min(received_at), now()) AT TIME ZONE 'UTC')
    INTO first_month FROM regstat.events_unpartitioned;
    last_month := date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months';
    FOR month_start IN SELECT generate_series(first_month, last_month, interval '1 month') LOOP
        EXECUTE format('CREATE TABLE regstat.%I PARTITION OF regstat.events FOR VALUES FROM (%L) TO (%L)',
                       'events_p' || to_char(month_start, 'YYYYMMDD'),
                       month_start AT TIME ZONE 'UTC',
                       (month_start + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
END
$$;

INSERT INTO regstat.events (
    id, occurred_at, action, media_type, digest, size, repository, tag, from_repository, actor,
    request_id, request_addr, request_host, request_method, request_useragent, source_addr,
    source_instance_id, received_at, correlation_id, stored_at, raw)
SELECT id, occurred_at, action, media_type, digest, size, repository, tag, from_repository, actor,
       request_id, request_addr, request_host, request_method, request_useragent, source_addr,
       source_instance_id, received_at, correlation_id, stored_at, raw
FROM regstat.events_unpartitioned;

INSERT INTO regstat.event_ids (id, received_at)
SELECT id, received_at FROM regstat.events_unpartitioned;

-- Indexes after the copy (faster than maintaining them row by row). The key includes the
-- partition key, as Postgres requires; it is not what makes ids unique (event_ids is).
ALTER TABLE regstat.events ADD PRIMARY KEY (id, received_at);
CREATE INDEX events_occurred_at_idx ON regstat.events (occurred_at);
CREATE INDEX events_repository_idx ON regstat.events (repository, occurred_at);

-- Fails (rather than cascading) if a view this migration does not recreate still reads it.
DROP TABLE regstat.events_unpartitioned;

COMMENT ON TABLE regstat.events IS
    'Registry notification events, one row per event id, as received (the ledger), '
    'range-partitioned by received_at.';

-- 4. Dependent views, as in 20261122000004_reports.sql.

-- history: pushes, pulls, mounts and deletes from the ledger, newest first.
CREATE VIEW regstat.report_history AS
SELECT e.occurred_at, e.request_host AS registry_host, e.repository, e.action, e.tag,
       e.digest, e.media_type, e.actor, e.request_method, e.request_useragent,
       e.request_addr, e.id AS event_id
FROM regstat.events e
WHERE e.action IN ('push', 'pull', 'mount', 'delete');

-- 5. The ledger's partitions, for people (psql) and for the worker's maintenance: each range
-- partition with its bounds (start inclusive, end exclusive), and the default partition with
-- NULL bounds. Row counts are the planner's estimate (-1: never analysed).
CREATE VIEW regstat.event_partitions AS
SELECT c.relname::text AS name,
       b.bound = 'DEFAULT' AS is_default,
       (CASE r[1] WHEN 'MINVALUE' THEN '-infinity' ELSE btrim(r[1], '''') END)::timestamptz
           AS range_start,
       (CASE r[2] WHEN 'MAXVALUE' THEN 'infinity' ELSE btrim(r[2], '''') END)::timestamptz
           AS range_end,
       c.reltuples::bigint AS estimated_rows,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
LEFT JOIN LATERAL regexp_match(b.bound, '^FOR VALUES FROM \((.+)\) TO \((.+)\)$') r ON true
WHERE i.inhparent = 'regstat.events'::regclass;
