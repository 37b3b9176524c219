-- The ledger holds each value of an event once (issue 16: write cost per event).
--
-- Until now a ledger row held the event twice: as columns (id, action, target.digest, ...) and
-- whole as `raw` jsonb, about two thirds of the row and the largest single item of the WAL
-- written per event. From now on `raw_rest` holds only what no column holds (the timestamp as
-- sent, target.url, target.length, target.references, fields regstat does not know, and any
-- value not spelled exactly as its column; the worker takes the columns' values out, see
-- regstat_store's LedgerRow::rest), and `regstat.event_json(e)` puts them back: it
-- returns the event exactly as the registry sent it (as jsonb), for rows written before or
-- after this migration.
--
-- Rows written before this migration keep their whole event in `raw_rest`: the column is
-- renamed, not rewritten, so upgrading takes no time on a large ledger, and event_json()
-- returns such a row's event unchanged (it only fills in values that are absent).

ALTER TABLE regstat.events RENAME COLUMN raw TO raw_rest;

COMMENT ON COLUMN regstat.events.raw_rest IS
    'The event as received minus the values its columns hold (rows written before migration '
    '17: the whole event); regstat.event_json(row) gives the whole event.';

-- A ledger row's event exactly as the registry sent it (as jsonb: key order and spacing are
-- jsonb's): its rest with every column value put back where the rest has none.
CREATE FUNCTION regstat.event_json(e regstat.events)
RETURNS jsonb LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    field record;
    event jsonb := e.raw_rest;
BEGIN
    -- Where in the event each column comes from: the same pairs as regstat_store's
    -- LedgerRow::rest, which takes them out (the ledger tests check the round trip).
    FOR field IN
        SELECT * FROM (VALUES
            ('{id}'::text[],            to_jsonb(e.id)),
            ('{action}',                to_jsonb(e.action)),
            ('{target,mediaType}',      to_jsonb(e.media_type)),
            ('{target,digest}',         to_jsonb(e.digest)),
            ('{target,size}',           to_jsonb(e.size)),
            ('{target,repository}',     to_jsonb(e.repository)),
            ('{target,tag}',            to_jsonb(e.tag)),
            ('{target,fromRepository}', to_jsonb(e.from_repository)),
            ('{actor,name}',            to_jsonb(e.actor)),
            ('{request,id}',            to_jsonb(e.request_id)),
            ('{request,addr}',          to_jsonb(e.request_addr)),
            ('{request,host}',          to_jsonb(e.request_host)),
            ('{request,method}',        to_jsonb(e.request_method)),
            ('{request,useragent}',     to_jsonb(e.request_useragent)),
            ('{source,addr}',           to_jsonb(e.source_addr)),
            ('{source,instanceID}',     to_jsonb(e.source_instance_id))) AS f(path, value)
    LOOP
        IF field.value IS NOT NULL AND event #> field.path IS NULL THEN
            event := jsonb_set(event, field.path, field.value);
        END IF;
    END LOOP;
    RETURN event;
END
$$;

COMMENT ON FUNCTION regstat.event_json(regstat.events) IS
    'The ledger row''s event exactly as the registry sent it (as jsonb).';
