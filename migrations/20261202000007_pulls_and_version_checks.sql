-- Pulls as real clients make them, and version checks (docs/MODEL.md, "Pulls and version
-- checks").
--
-- containerd (and Docker's containerd store, and so most of Kubernetes) resolves a tag with a
-- HEAD, then fetches the manifest by digest: the GET carries no tag. A resolve followed by a
-- GET of its digest by the same client (address without port, and User-Agent) within
-- `worker.pull_window_secs` is one pull of the tag; a resolve no GET follows is a version
-- check (the client already had the image).

-- Every manifest HEAD and GET a client made (regstat's own callbacks excepted), with how it
-- is classified now. Classification depends only on the requests of the same client and
-- digest within the window, so the worker reclassifies the neighbours of each new request
-- under a lock per (registry, repository, client, digest) and applies the difference: the
-- counts depend only on the set of requests, not on their order, batching or workers.
-- Rows are kept for `ledger.dedupe_days` (a request delivered later than that is classified
-- without its older neighbours).
CREATE TABLE regstat.manifest_requests (
    event_id            text PRIMARY KEY,
    registry            text NOT NULL,
    repository          text NOT NULL,
    client_addr         text NOT NULL,     -- request.addr without its port
    client_agent        text NOT NULL,     -- request.useragent
    digest              text NOT NULL,
    tag                 text,              -- NULL for a request by digest
    method              text NOT NULL CHECK (method IN ('GET', 'HEAD')),
    at                  timestamptz NOT NULL,
    system              boolean NOT NULL,
    -- HEADs (resolves): no GET of the digest by the client followed within the window.
    is_check            boolean,
    -- GETs by digest: the tag of the HEAD they complete ('' when none: a pull by digest).
    credited_tag        text
);
CREATE INDEX manifest_requests_client_idx ON regstat.manifest_requests
    (registry, repository, client_addr, client_agent, digest, at);
CREATE INDEX manifest_requests_at_idx ON regstat.manifest_requests (at);

-- Version checks per day, tag ('' for a HEAD by digest) and digest: how many resolves no fetch
-- followed, and the newest resolve of that tag and digest that day (followed or not: the
-- newest time a client asked what the tag names).
CREATE TABLE regstat.version_checks (
    day                 date NOT NULL,
    registry            text NOT NULL,
    repository          text NOT NULL,
    tag                 text NOT NULL,
    digest              text NOT NULL,
    system              boolean NOT NULL,
    checks              bigint NOT NULL,
    last_checked_at     timestamptz,
    PRIMARY KEY (day, registry, repository, tag, digest, system)
);

-- images: every live tag with its manifest, its pulls and its version checks (non-system).
-- Columns appended at the end, which the view's dependants allow.
CREATE OR REPLACE VIEW regstat.report_images AS
SELECT t.registry, t.repository, t.tag, t.digest, m.media_type,
       COALESCE(pl.platforms, '{}'::text[]) AS platforms,
       s.size, t.pushed_at, t.last_pulled_at, t.pull_count,
       COALESCE(vc.checks, 0) AS version_checks, vc.last_checked_at
FROM regstat.live_tags t
LEFT JOIN regstat.manifests m USING (registry, repository, digest)
LEFT JOIN regstat.manifest_platform_list pl USING (registry, repository, digest)
LEFT JOIN regstat.manifest_sizes s USING (registry, repository, digest)
LEFT JOIN LATERAL (
    SELECT sum(v.checks)::bigint AS checks, max(v.last_checked_at) AS last_checked_at
    FROM regstat.version_checks v
    WHERE v.registry = t.registry AND v.repository = t.repository AND v.tag = t.tag
      AND v.digest = t.digest AND NOT v.system
) vc ON true;

-- version-checks: resolves no pull followed, per tag and digest in the last `days` days
-- (system clients excluded).
CREATE FUNCTION regstat.top_checked(days integer)
RETURNS TABLE (registry text, repository text, tag text, digest text, checks bigint,
               last_checked_at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT v.registry, v.repository, v.tag, v.digest, sum(v.checks)::bigint,
           max(v.last_checked_at)
    FROM regstat.version_checks v
    WHERE NOT v.system AND v.day > (now() AT TIME ZONE 'UTC')::date - days
    GROUP BY v.registry, v.repository, v.tag, v.digest
    HAVING sum(v.checks) > 0
$$;
