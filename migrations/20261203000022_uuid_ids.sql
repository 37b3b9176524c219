-- Event ids, request ids and source instance ids stored as uuid (16 bytes) instead of text
-- (37 bytes) (issue 16: write cost per event). A registry's ids are UUIDs; the event id is
-- written four times per event (the ledger row, regstat.event_ids and its key, and
-- regstat.manifest_requests and its key for a manifest request), the two others once.
--
-- A uuid column gives a value back exactly when it was spelled as PostgreSQL spells a UUID
-- (lowercase, hyphenated): regstat.uuid_column() below, regstat_store's keys::uuid_column.
-- A request or instance id spelled otherwise leaves its column NULL and stays in raw_rest, as
-- any value not spelled as its column does (migration 17). An event id spelled otherwise is
-- stored under its key, regstat.event_key() below (regstat_store's keys::event_key, which a
-- ledger test checks against it), and stays in raw_rest too: event_json() gives back every
-- event exactly as before, and regstat.event_id(e) gives its id as sent.
--
-- This migration REWRITES the ledger, regstat.event_ids and regstat.manifest_requests (a
-- column's type changes), in time and disk space proportional to their size; workers wait on
-- the migration lock meanwhile and events wait in RabbitMQ. migrations/README.md says how to
-- upgrade.

-- `value` as a uuid column holds it, when the column gives it back as sent; NULL otherwise.
CREATE FUNCTION regstat.uuid_column(value text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN value::uuid END
$$;

-- The key an event id is stored and deduplicated under: the id itself when it is a uuid
-- column's value, otherwise the version-8 UUID of the first 16 bytes of its SHA-256. Look an
-- event up by its id as sent with `WHERE id = regstat.event_key('...')`.
CREATE FUNCTION regstat.event_key(id text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT COALESCE(regstat.uuid_column(id), (
        SELECT encode(set_byte(set_byte(h, 6, (get_byte(h, 6) & 15) | 128),
                               8, (get_byte(h, 8) & 63) | 128), 'hex')::uuid
        FROM (SELECT substring(sha256(convert_to(id, 'UTF8')) FROM 1 FOR 16) AS h) AS hash))
$$;

-- A ledger row's event id as sent (its key's text when the rest does not hold it).
CREATE FUNCTION regstat.event_id(e regstat.events) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(e.raw_rest ->> 'id', e.id::text)
$$;

-- 1. Values a uuid column would not give back go to raw_rest first (rows written before
-- migration 17 hold the whole event there already: nothing to do for them).
UPDATE regstat.events SET raw_rest = raw_rest || jsonb_build_object('id', id)
WHERE regstat.uuid_column(id) IS NULL AND NOT raw_rest ? 'id';
UPDATE regstat.events
SET raw_rest = raw_rest || jsonb_build_object('request',
        COALESCE(raw_rest -> 'request', '{}') || jsonb_build_object('id', request_id))
WHERE regstat.uuid_column(request_id) IS NULL AND request_id IS NOT NULL
  AND raw_rest #> '{request,id}' IS NULL;
UPDATE regstat.events
SET raw_rest = raw_rest || jsonb_build_object('source',
        COALESCE(raw_rest -> 'source', '{}') || jsonb_build_object('instanceID', source_instance_id))
WHERE regstat.uuid_column(source_instance_id) IS NULL AND source_instance_id IS NOT NULL
  AND raw_rest #> '{source,instanceID}' IS NULL;

-- 2. The types (the view reading the ledger's id is recreated around it).
DROP VIEW regstat.report_history;
ALTER TABLE regstat.events
    ALTER COLUMN id TYPE uuid USING regstat.event_key(id),
    ALTER COLUMN request_id TYPE uuid USING regstat.uuid_column(request_id),
    ALTER COLUMN source_instance_id TYPE uuid USING regstat.uuid_column(source_instance_id);
ALTER TABLE regstat.event_ids ALTER COLUMN id TYPE uuid USING regstat.event_key(id);
ALTER TABLE regstat.manifest_requests
    ALTER COLUMN event_id TYPE uuid USING regstat.event_key(event_id);

-- history: pushes, pulls, mounts and deletes from the ledger, newest first (as in migration
-- 6; event_id is the id as sent, text as before).
CREATE VIEW regstat.report_history AS
SELECT e.occurred_at, e.request_host AS registry_host, e.repository, e.action, e.tag,
       e.digest, e.media_type, e.actor, e.request_method, e.request_useragent,
       e.request_addr, regstat.event_id(e) AS event_id
FROM regstat.events e
WHERE e.action IN ('push', 'pull', 'mount', 'delete');

COMMENT ON COLUMN regstat.events.id IS
    'The event id''s key: the id when it is a UUID spelled lowercase and hyphenated, else '
    'regstat.event_key(id), the id as sent then being in raw_rest; regstat.event_id(row) '
    'gives the id as sent.';
COMMENT ON COLUMN regstat.events.request_id IS
    'request.id when it is a UUID spelled lowercase and hyphenated; NULL otherwise (then in '
    'raw_rest).';
COMMENT ON COLUMN regstat.events.source_instance_id IS
    'source.instanceID when it is a UUID spelled lowercase and hyphenated; NULL otherwise '
    '(then in raw_rest).';
