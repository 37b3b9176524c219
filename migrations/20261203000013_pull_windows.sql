-- Pulls and version checks per tag, and image pulls per platform, over the windows the
-- console and the reports offer (7, 30, 90 and 365 days), cached per repository like the rows
-- of migration 20261202000009_repository_caches.sql (its header explains why no write is
-- missed).
--
-- top-pulled, version-checks and architectures summed a row per tag (or repository and
-- platform) and day over the window: at 2 million events (20,000 tags, 90 days of pulls)
-- hundreds of thousands of rows per request. The caches hold one row per tag (or repository
-- and platform) with the sums of the four windows, so reading them costs the tags, not the
-- days.
--
-- A window ends today (UTC), so a repository's cached sums are those of the day they were
-- computed (`repository_contents.windows_as_of`). Readers take cached rows of repositories
-- that are neither stale nor computed on another day, and compute the others from the model;
-- any other window is computed as before. When the day changes, the refresher marks the
-- repositories with cached window rows stale (store/src/caches.rs, `roll_over_windows`), and
-- moves on the day of those without any (a day passing adds no row to a window).

ALTER TABLE regstat.repository_contents ADD COLUMN windows_as_of date;
-- The repository's image pulls in the 30 days ending `windows_as_of` (the repository list).
ALTER TABLE regstat.repository_contents ADD COLUMN pulls_30d bigint;

-- Pulls naming a tag (system pulls apart), per tag: a sum per window (NULL when the window
-- has no row of the tag, as top_pulled then has no row) and the last day with a row (the
-- same in every window that has one, since windows differ only in their first day).
CREATE VIEW regstat.tag_pull_windows_live AS
SELECT p.registry, p.repository, p.tag, max(p.day) AS last_day,
       (sum(p.pulls) FILTER (WHERE p.day > d.today - 7))::bigint AS pulls_7d,
       (sum(p.pulls) FILTER (WHERE p.day > d.today - 30))::bigint AS pulls_30d,
       (sum(p.pulls) FILTER (WHERE p.day > d.today - 90))::bigint AS pulls_90d,
       sum(p.pulls)::bigint AS pulls_365d
FROM regstat.pull_metrics p
CROSS JOIN (SELECT (now() AT TIME ZONE 'UTC')::date AS today) d
WHERE NOT p.system AND p.tag <> '' AND p.day > d.today - 365
GROUP BY p.registry, p.repository, p.tag;

CREATE TABLE regstat.tag_pull_window_rows (
    registry    text NOT NULL,
    repository  text NOT NULL,
    tag         text NOT NULL,
    last_day    date NOT NULL,
    pulls_7d    bigint,
    pulls_30d   bigint,
    pulls_90d   bigint,
    pulls_365d  bigint,
    PRIMARY KEY (registry, repository, tag)
);

-- Version checks per tag and digest (system clients apart): the checks of each window and
-- the newest check in it (NULL when the window has no row).
CREATE VIEW regstat.tag_check_windows_live AS
SELECT v.registry, v.repository, v.tag, v.digest,
       (sum(v.checks) FILTER (WHERE v.day > d.today - 7))::bigint AS checks_7d,
       (sum(v.checks) FILTER (WHERE v.day > d.today - 30))::bigint AS checks_30d,
       (sum(v.checks) FILTER (WHERE v.day > d.today - 90))::bigint AS checks_90d,
       sum(v.checks)::bigint AS checks_365d,
       max(v.last_checked_at) FILTER (WHERE v.day > d.today - 7) AS last_checked_7d,
       max(v.last_checked_at) FILTER (WHERE v.day > d.today - 30) AS last_checked_30d,
       max(v.last_checked_at) FILTER (WHERE v.day > d.today - 90) AS last_checked_90d,
       max(v.last_checked_at) AS last_checked_365d
FROM regstat.version_checks v
CROSS JOIN (SELECT (now() AT TIME ZONE 'UTC')::date AS today) d
WHERE NOT v.system AND v.day > d.today - 365
GROUP BY v.registry, v.repository, v.tag, v.digest;

CREATE TABLE regstat.tag_check_window_rows (
    registry           text NOT NULL,
    repository         text NOT NULL,
    tag                text NOT NULL,
    digest             text NOT NULL,
    checks_7d          bigint,
    checks_30d         bigint,
    checks_90d         bigint,
    checks_365d        bigint,
    last_checked_7d    timestamptz,
    last_checked_30d   timestamptz,
    last_checked_90d   timestamptz,
    last_checked_365d  timestamptz,
    PRIMARY KEY (registry, repository, tag, digest)
);

-- Image pulls per repository and platform (system pulls apart): a sum per window, NULL when
-- the window has no row (the architectures report and the overview's platforms). Content
-- arriving later may decide a pulled manifest's platform: it marks its repository stale.
CREATE VIEW regstat.platform_pull_windows_live AS
SELECT v.registry, v.repository, v.os, v.architecture, v.variant,
       (sum(v.pulls) FILTER (WHERE v.day > d.today - 7))::bigint AS pulls_7d,
       (sum(v.pulls) FILTER (WHERE v.day > d.today - 30))::bigint AS pulls_30d,
       (sum(v.pulls) FILTER (WHERE v.day > d.today - 90))::bigint AS pulls_90d,
       sum(v.pulls)::bigint AS pulls_365d
FROM regstat.platform_pulls_live v
CROSS JOIN (SELECT (now() AT TIME ZONE 'UTC')::date AS today) d
WHERE v.day > d.today - 365
GROUP BY v.registry, v.repository, v.os, v.architecture, v.variant;

CREATE TABLE regstat.platform_pull_window_rows (
    registry      text NOT NULL,
    repository    text NOT NULL,
    os            text,
    architecture  text,
    variant       text,
    pulls_7d      bigint,
    pulls_30d     bigint,
    pulls_90d     bigint,
    pulls_365d    bigint
);
CREATE INDEX platform_pull_window_rows_key_idx
    ON regstat.platform_pull_window_rows (registry, repository);

-- The repositories whose window rows a reader computes from the model: the stale ones, and
-- those whose cached rows are of another day (or, for a window the cache does not hold,
-- every one). Every repository the model knows is in repository_contents or stale.
CREATE FUNCTION regstat.window_uncached(days integer)
RETURNS TABLE (registry text, repository text) LANGUAGE sql STABLE AS $$
    SELECT s.registry, s.repository FROM regstat.stale_repositories s
    UNION ALL
    SELECT c.registry, c.repository FROM regstat.repository_contents c
    WHERE (days NOT IN (7, 30, 90, 365)
           OR c.windows_as_of IS DISTINCT FROM (now() AT TIME ZONE 'UTC')::date)
      AND NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                      WHERE s.registry = c.registry AND s.repository = c.repository)
$$;

-- The repositories whose cached window rows a reader takes: computed today, not stale.
CREATE VIEW regstat.window_cached AS
SELECT c.registry, c.repository, c.pulls_30d FROM regstat.repository_contents c
WHERE c.windows_as_of = (now() AT TIME ZONE 'UTC')::date
  AND NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                  WHERE s.registry = c.registry AND s.repository = c.repository);

-- One repository's pulls per tag over the windows (the repository page): cached, or from the
-- model.
CREATE FUNCTION regstat.tag_pull_windows_of(registry text, repository text)
RETURNS TABLE (tag text, last_day date, pulls_7d bigint, pulls_30d bigint, pulls_90d bigint,
               pulls_365d bigint) LANGUAGE sql STABLE AS $$
    SELECT c.tag, c.last_day, c.pulls_7d, c.pulls_30d, c.pulls_90d, c.pulls_365d
    FROM regstat.tag_pull_window_rows c
    WHERE c.registry = $1 AND c.repository = $2
      AND EXISTS (SELECT 1 FROM regstat.window_cached k
                  WHERE k.registry = $1 AND k.repository = $2)
    UNION ALL
    SELECT l.tag, l.last_day, l.pulls_7d, l.pulls_30d, l.pulls_90d, l.pulls_365d
    FROM regstat.tag_pull_windows_live l
    WHERE l.registry = $1 AND l.repository = $2
      AND NOT EXISTS (SELECT 1 FROM regstat.window_cached k
                      WHERE k.registry = $1 AND k.repository = $2)
$$;

-- top-pulled: the same rows as before (migration 20261122000004), from the cache where it
-- holds the window.
CREATE OR REPLACE FUNCTION regstat.top_pulled(days integer)
RETURNS TABLE (registry text, repository text, tag text, pulls bigint,
               last_day date) LANGUAGE sql STABLE AS $$
    SELECT w.registry, w.repository, w.tag, w.pulls, w.last_day FROM (
        SELECT c.registry, c.repository, c.tag, c.last_day,
               CASE days WHEN 7 THEN c.pulls_7d WHEN 30 THEN c.pulls_30d
                         WHEN 90 THEN c.pulls_90d WHEN 365 THEN c.pulls_365d END AS pulls
        FROM regstat.tag_pull_window_rows c
        JOIN regstat.window_cached k
          ON k.registry = c.registry AND k.repository = c.repository
        WHERE days IN (7, 30, 90, 365)
    ) w
    WHERE w.pulls IS NOT NULL
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

-- version-checks: the same rows as before (migration 20261202000007), from the cache where
-- it holds the window.
CREATE OR REPLACE FUNCTION regstat.top_checked(days integer)
RETURNS TABLE (registry text, repository text, tag text, digest text, checks bigint,
               last_checked_at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT w.registry, w.repository, w.tag, w.digest, w.checks, w.last_checked_at FROM (
        SELECT c.registry, c.repository, c.tag, c.digest,
               CASE days WHEN 7 THEN c.checks_7d WHEN 30 THEN c.checks_30d
                         WHEN 90 THEN c.checks_90d WHEN 365 THEN c.checks_365d END AS checks,
               CASE days WHEN 7 THEN c.last_checked_7d WHEN 30 THEN c.last_checked_30d
                         WHEN 90 THEN c.last_checked_90d
                         WHEN 365 THEN c.last_checked_365d END AS last_checked_at
        FROM regstat.tag_check_window_rows c
        JOIN regstat.window_cached k
          ON k.registry = c.registry AND k.repository = c.repository
        WHERE days IN (7, 30, 90, 365)
    ) w
    WHERE w.checks > 0
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

-- architectures: the same rows as before (migration 20261202000009), from the window cache
-- where it holds the window, else from the cache per (repository, day).
CREATE OR REPLACE FUNCTION regstat.pulls_by_platform(days integer)
RETURNS TABLE (registry text, os text, architecture text, variant text, pulls bigint)
LANGUAGE sql STABLE AS $$
    SELECT u.registry, u.os, u.architecture, u.variant, sum(u.pulls)::bigint FROM (
        -- A window the window cache holds: its rows of cached repositories...
        SELECT w.registry, w.os, w.architecture, w.variant, w.pulls FROM (
            SELECT c.registry, c.os, c.architecture, c.variant,
                   CASE days WHEN 7 THEN c.pulls_7d WHEN 30 THEN c.pulls_30d
                             WHEN 90 THEN c.pulls_90d WHEN 365 THEN c.pulls_365d END AS pulls
            FROM regstat.platform_pull_window_rows c
            JOIN regstat.window_cached k
              ON k.registry = c.registry AND k.repository = c.repository
            WHERE days IN (7, 30, 90, 365)
        ) w
        WHERE w.pulls IS NOT NULL
        UNION ALL
        -- ...and the others from the model.
        SELECT l.registry, l.os, l.architecture, l.variant, l.pulls
        FROM regstat.window_uncached(days) k
        CROSS JOIN LATERAL (
            SELECT * FROM regstat.platform_pulls_live v
            WHERE v.registry = k.registry AND v.repository = k.repository
              AND v.day > (now() AT TIME ZONE 'UTC')::date - days
            OFFSET 0 -- per repository
        ) l
        WHERE days IN (7, 30, 90, 365)
        UNION ALL
        -- Any other window: the cached (repository, day)s, and the stale ones from the model.
        SELECT c.registry, c.os, c.architecture, c.variant, c.pulls
        FROM regstat.platform_pull_rows c
        WHERE days NOT IN (7, 30, 90, 365)
          AND c.day > (now() AT TIME ZONE 'UTC')::date - days
          AND NOT EXISTS (SELECT 1 FROM regstat.stale_pull_days s
                          WHERE s.registry = c.registry AND s.repository = c.repository
                            AND s.day = c.day)
        UNION ALL
        SELECT l.registry, l.os, l.architecture, l.variant, l.pulls
        FROM regstat.stale_pull_days s
        CROSS JOIN LATERAL (
            SELECT * FROM regstat.platform_pulls_live v
            WHERE v.registry = s.registry AND v.repository = s.repository AND v.day = s.day
            OFFSET 0 -- per stale (repository, day)
        ) l
        WHERE days NOT IN (7, 30, 90, 365)
          AND s.day > (now() AT TIME ZONE 'UTC')::date - days
    ) u
    GROUP BY u.registry, u.os, u.architecture, u.variant
$$;

-- blobs: the per-registry line (each digest once across repositories, a count over every
-- live blob) from the refresher's registry totals when it has them, as of when it computed
-- them (`as_of`; the refresher recomputes them at most a minute after a change); computed now
-- otherwise, only for the registries without a count (the fence keeps the planner from
-- counting every registry's blobs first). Per-repository lines are the model's now (`as_of`
-- empty).
CREATE OR REPLACE VIEW regstat.report_blobs AS
SELECT registry, repository, blobs, blob_bytes AS bytes, NULL::timestamptz AS as_of
FROM regstat.repositories_now
WHERE blobs > 0
UNION ALL
SELECT g.registry, NULL, g.blobs, g.blob_bytes, g.refreshed_at
FROM regstat.registry_contents g
WHERE g.blobs > 0 AND isfinite(g.refreshed_at) -- '-infinity': to be recomputed
UNION ALL
SELECT r.registry, NULL, l.blobs, l.bytes, NULL
FROM (SELECT k.registry FROM (SELECT registry FROM regstat.repository_contents
                              UNION SELECT registry FROM regstat.stale_repositories) k
      WHERE NOT EXISTS (SELECT 1 FROM regstat.registry_contents g
                        WHERE g.registry = k.registry AND isfinite(g.refreshed_at))
      OFFSET 0 -- registries without a count, before counting theirs
     ) r
CROSS JOIN LATERAL (
    SELECT count(*) AS blobs, COALESCE(sum(d.size), 0)::bigint AS bytes
    FROM (SELECT DISTINCT ON (b.digest) b.digest, b.size FROM regstat.live_blobs b
          WHERE b.registry = r.registry ORDER BY b.digest) d
) l
WHERE l.blobs > 0;
