-- The ledger stores a target URL without the digest it ends with (issue 16: write cost per
-- event). A registry's target.url is its base URL, /v2/, the repository, blobs/ or
-- manifests/, and the digest, which the row already holds in its digest column: about 140
-- bytes of each row's raw_rest, of which the digest is half. From now on, when target.url ends
-- with '/' and the row's digest, target_url_prefix holds what precedes them and raw_rest holds
-- no URL (regstat_store's LedgerRow::rest); event_json() puts the URL back.
--
-- It also leaves out of raw_rest an object of the event that taking the columns' values out
-- left empty. A registry's `request` holds only fields that are columns (id, addr, host,
-- method, useragent), and so does its `source` (addr, instanceID): both were stored as `{}`,
-- kept only to say that the event had them, which a column holding a value under them says
-- already. event_json() creates such an object as it puts its first value back. An object
-- that was empty as sent (`"actor": {}` from a registry without auth) stays.
--
-- Adding a nullable column rewrites nothing; rows written before keep their URL and objects
-- in raw_rest, and a NULL target_url_prefix.

ALTER TABLE regstat.events ADD COLUMN target_url_prefix text;

COMMENT ON COLUMN regstat.events.target_url_prefix IS
    'target.url without its final ''/'' and digest, when it ends so (raw_rest then holds no '
    'URL); NULL otherwise.';

-- As in migration 17, plus the URL, creating an object the rest leaves out.
CREATE OR REPLACE FUNCTION regstat.event_json(e regstat.events)
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
            ('{target,url}',            to_jsonb(e.target_url_prefix || '/' || e.digest)),
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
            -- An object all of whose fields are columns is not in the rest: created here.
            IF cardinality(field.path) = 2 AND NOT event ? field.path[1] THEN
                event := event || jsonb_build_object(field.path[1], '{}'::jsonb);
            END IF;
            event := jsonb_set(event, field.path, field.value);
        END IF;
    END LOOP;
    RETURN event;
END
$$;
