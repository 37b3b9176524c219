-- Reads that grew with the registry (issue 12, at 2 million events): the top-N reports
-- (most-tags, top-pulled, version-checks) read every tag, now about as many rows as they show;
-- search read the trigram indexes' pending lists whole (section 3).
--
-- 1. most-tags: each digest's tags per repository, cached like the image rows (the refresher
--    fills it, readers take the live rows of stale repositories), indexed by tag count.
CREATE VIEW regstat.digest_tags_live AS
SELECT registry, repository, digest, media_type, count(*) AS tags,
       array_agg(tag ORDER BY tag) AS tag_names
FROM regstat.images_live
GROUP BY registry, repository, digest, media_type;

CREATE TABLE regstat.digest_tag_rows (
    registry    text NOT NULL,
    repository  text NOT NULL,
    digest      text,
    media_type  text,
    tags        bigint NOT NULL,
    tag_names   text[] NOT NULL
);
CREATE INDEX digest_tag_rows_key_idx ON regstat.digest_tag_rows (registry, repository);
CREATE INDEX digest_tag_rows_top_idx
    ON regstat.digest_tag_rows (tags DESC, registry, repository, digest);

INSERT INTO regstat.digest_tag_rows SELECT * FROM regstat.digest_tags_live;

-- The same rows as before (migration 20261202000009), the first `top` of them in the report's
-- order (all when NULL): the cached rows from the index, then the stale repositories' live ones.
CREATE FUNCTION regstat.most_tags(top bigint DEFAULT NULL)
RETURNS TABLE (registry text, repository text, digest text, media_type text, tags bigint,
               tag_names text[]) LANGUAGE sql STABLE AS $$
    (SELECT c.registry, c.repository, c.digest, c.media_type, c.tags, c.tag_names
     FROM regstat.digest_tag_rows c
     WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                       WHERE s.registry = c.registry AND s.repository = c.repository)
     ORDER BY c.tags DESC, c.registry, c.repository, c.digest
     LIMIT top)
    UNION ALL
    SELECT l.registry, l.repository, l.digest, l.media_type, l.tags, l.tag_names
    FROM regstat.stale_repositories s
    CROSS JOIN LATERAL (
        SELECT * FROM regstat.digest_tags_live v
        WHERE v.registry = s.registry AND v.repository = s.repository
        OFFSET 0 -- per stale repository
    ) l
$$;

CREATE OR REPLACE VIEW regstat.report_most_tags AS
SELECT * FROM regstat.most_tags();

-- 2. top-pulled and version-checks: an index per window on each window cache, and the
--    functions take the number of rows wanted, so the cached rows come from the index.
CREATE INDEX tag_pull_window_rows_7d_idx
    ON regstat.tag_pull_window_rows (pulls_7d DESC, registry, repository, tag);
CREATE INDEX tag_pull_window_rows_30d_idx
    ON regstat.tag_pull_window_rows (pulls_30d DESC, registry, repository, tag);
CREATE INDEX tag_pull_window_rows_90d_idx
    ON regstat.tag_pull_window_rows (pulls_90d DESC, registry, repository, tag);
CREATE INDEX tag_pull_window_rows_365d_idx
    ON regstat.tag_pull_window_rows (pulls_365d DESC, registry, repository, tag);
CREATE INDEX tag_check_window_rows_7d_idx
    ON regstat.tag_check_window_rows (checks_7d DESC, registry, repository, tag, digest);
CREATE INDEX tag_check_window_rows_30d_idx
    ON regstat.tag_check_window_rows (checks_30d DESC, registry, repository, tag, digest);
CREATE INDEX tag_check_window_rows_90d_idx
    ON regstat.tag_check_window_rows (checks_90d DESC, registry, repository, tag, digest);
CREATE INDEX tag_check_window_rows_365d_idx
    ON regstat.tag_check_window_rows (checks_365d DESC, registry, repository, tag, digest);

-- The same rows as before (migration 20261203000013), the cached ones only the first `top` in
-- the report's order (all when NULL): a branch per cached window, each read from its index.
DROP FUNCTION regstat.top_pulled(integer);
CREATE FUNCTION regstat.top_pulled(days integer, top bigint DEFAULT NULL)
RETURNS TABLE (registry text, repository text, tag text, pulls bigint,
               last_day date) LANGUAGE sql STABLE AS $$
    (SELECT c.registry, c.repository, c.tag, c.pulls_7d, c.last_day
     FROM regstat.tag_pull_window_rows c
     WHERE days = 7 AND c.pulls_7d IS NOT NULL
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.pulls_7d DESC, c.registry, c.repository, c.tag
     LIMIT top)
    UNION ALL
    (SELECT c.registry, c.repository, c.tag, c.pulls_30d, c.last_day
     FROM regstat.tag_pull_window_rows c
     WHERE days = 30 AND c.pulls_30d IS NOT NULL
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.pulls_30d DESC, c.registry, c.repository, c.tag
     LIMIT top)
    UNION ALL
    (SELECT c.registry, c.repository, c.tag, c.pulls_90d, c.last_day
     FROM regstat.tag_pull_window_rows c
     WHERE days = 90 AND c.pulls_90d IS NOT NULL
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.pulls_90d DESC, c.registry, c.repository, c.tag
     LIMIT top)
    UNION ALL
    (SELECT c.registry, c.repository, c.tag, c.pulls_365d, c.last_day
     FROM regstat.tag_pull_window_rows c
     WHERE days = 365 AND c.pulls_365d IS NOT NULL
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.pulls_365d DESC, c.registry, c.repository, c.tag
     LIMIT top)
    UNION ALL
    SELECT l.registry, l.repository, l.tag, sum(l.pulls)::bigint, max(l.day)
    FROM regstat.window_uncached(days) k
    CROSS JOIN LATERAL (
        SELECT p.registry, p.repository, p.tag, p.pulls, p.day FROM regstat.pull_metrics p
        WHERE p.registry = k.registry AND p.repository = k.repository
          AND NOT p.system AND p.tag <> ''
          AND p.day > (now() AT TIME ZONE 'UTC')::date - days
        OFFSET 0 -- per repository
    ) l
    GROUP BY l.registry, l.repository, l.tag
$$;

DROP FUNCTION regstat.top_checked(integer);
CREATE FUNCTION regstat.top_checked(days integer, top bigint DEFAULT NULL)
RETURNS TABLE (registry text, repository text, tag text, digest text, checks bigint,
               last_checked_at timestamptz) LANGUAGE sql STABLE AS $$
    (SELECT c.registry, c.repository, c.tag, c.digest, c.checks_7d, c.last_checked_7d
     FROM regstat.tag_check_window_rows c
     WHERE days = 7 AND c.checks_7d > 0
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.checks_7d DESC, c.registry, c.repository, c.tag, c.digest
     LIMIT top)
    UNION ALL
    (SELECT c.registry, c.repository, c.tag, c.digest, c.checks_30d, c.last_checked_30d
     FROM regstat.tag_check_window_rows c
     WHERE days = 30 AND c.checks_30d > 0
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.checks_30d DESC, c.registry, c.repository, c.tag, c.digest
     LIMIT top)
    UNION ALL
    (SELECT c.registry, c.repository, c.tag, c.digest, c.checks_90d, c.last_checked_90d
     FROM regstat.tag_check_window_rows c
     WHERE days = 90 AND c.checks_90d > 0
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.checks_90d DESC, c.registry, c.repository, c.tag, c.digest
     LIMIT top)
    UNION ALL
    (SELECT c.registry, c.repository, c.tag, c.digest, c.checks_365d, c.last_checked_365d
     FROM regstat.tag_check_window_rows c
     WHERE days = 365 AND c.checks_365d > 0
       AND EXISTS (SELECT 1 FROM regstat.window_cached k
                   WHERE k.registry = c.registry AND k.repository = c.repository)
     ORDER BY c.checks_365d DESC, c.registry, c.repository, c.tag, c.digest
     LIMIT top)
    UNION ALL
    SELECT l.registry, l.repository, l.tag, l.digest, sum(l.checks)::bigint,
           max(l.last_checked_at)
    FROM regstat.window_uncached(days) k
    CROSS JOIN LATERAL (
        SELECT v.registry, v.repository, v.tag, v.digest, v.checks, v.last_checked_at
        FROM regstat.version_checks v
        WHERE v.registry = k.registry AND v.repository = k.repository AND NOT v.system
          AND v.day > (now() AT TIME ZONE 'UTC')::date - days
        OFFSET 0 -- per repository
    ) l
    GROUP BY l.registry, l.repository, l.tag, l.digest
    HAVING sum(l.checks) > 0
$$;

-- 3. Search: a GIN index keeps new entries in a pending list, read in full by every search,
--    until VACUUM (autovacuum) or the list's size limit (4 MB by default) merges them. At
--    2 million events with autovacuum off the two lists held 1.7 MB and 1 MB, and each search
--    spent about 10 ms reading them (0.1 ms after gin_clean_pending_list). A 256 kB limit
--    keeps that read under a millisecond whatever vacuum does, and still batches the inserts.
ALTER INDEX regstat.tags_tag_trgm_idx SET (gin_pending_list_limit = 256);
ALTER INDEX regstat.actors_actor_trgm_idx SET (gin_pending_list_limit = 256);
