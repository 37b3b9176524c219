-- Ages that are never empty (docs/MODEL.md, "Ages and last use"). An image regstat did not
-- see pushed (it predates regstat, or its push event was lost) still has an age and a last use:
--
-- - first seen: when regstat first knew the tag (its first push, or the earliest sync that
--   saw it); `first_seen_at` records the earliest sync observation of a tag and of a manifest
--   (LEAST, so observations still commute);
-- - created: when the image was built, as its config states (`manifests.created_at`, content
--   like the platform: first known value); an index's is its newest child's;
-- - age = pushed, else created (an estimate), else first seen (`age_source` says which);
-- - last used = the latest of last pull, last version check and push, else first seen
--   (`last_used_source` says which).
-- `stale` takes the age, `unpulled` the last use: an image synced N days ago and never pulled
-- since is "unpulled for N days", never invisible.

ALTER TABLE regstat.tags ADD COLUMN first_seen_at timestamptz;
ALTER TABLE regstat.manifests ADD COLUMN first_seen_at timestamptz;
-- Known for content fetched from now on (configs fetched before are not read again).
ALTER TABLE regstat.manifests ADD COLUMN created_at timestamptz;
-- What earlier syncs saw: their newest sighting is the earliest one known.
UPDATE regstat.tags SET first_seen_at = seen_at WHERE seen_at IS NOT NULL;
UPDATE regstat.manifests SET first_seen_at = seen_at WHERE seen_at IS NOT NULL;

-- The image rows, with the ages appended (same columns first, as the cache stores them).
CREATE OR REPLACE VIEW regstat.images_live AS
SELECT t.registry, t.repository, t.tag, t.digest, m.media_type,
       COALESCE(pl.platforms, '{}'::text[]) AS platforms,
       s.size, t.pushed_at, t.last_pulled_at, t.pull_count,
       COALESCE(vc.checks, 0) AS version_checks, vc.last_checked_at,
       COALESCE(u.used_at, f.first_seen_at) AS last_used_at,
       f.first_seen_at,
       COALESCE(t.pushed_at, cr.created_at, f.first_seen_at) AS age_at,
       CASE WHEN t.pushed_at IS NOT NULL THEN 'pushed'
            WHEN cr.created_at IS NOT NULL THEN 'created'
            WHEN f.first_seen_at IS NOT NULL THEN 'first_seen' END AS age_source,
       CASE WHEN u.used_at IS NULL THEN
                CASE WHEN f.first_seen_at IS NOT NULL THEN 'first_seen' END
            WHEN u.used_at = t.last_pulled_at THEN 'pulled'
            WHEN u.used_at = vc.last_checked_at THEN 'checked'
            ELSE 'pushed' END AS last_used_source,
       cr.created_at
FROM regstat.live_tags t
LEFT JOIN LATERAL (
    SELECT m.media_type FROM regstat.manifests m
    WHERE m.registry = t.registry AND m.repository = t.repository AND m.digest = t.digest
    LIMIT 1
) m ON true
LEFT JOIN LATERAL (
    SELECT p.platforms FROM regstat.manifest_platform_list p
    WHERE p.registry = t.registry AND p.repository = t.repository AND p.digest = t.digest
    LIMIT 1
) pl ON true
LEFT JOIN LATERAL regstat.manifest_size_of(t.registry, t.repository, t.digest) s ON true
LEFT JOIN LATERAL (
    SELECT sum(v.checks)::bigint AS checks, max(v.last_checked_at) AS last_checked_at
    FROM regstat.version_checks v
    WHERE v.registry = t.registry AND v.repository = t.repository AND v.tag = t.tag
      AND v.digest = t.digest AND NOT v.system
) vc ON true
LEFT JOIN LATERAL (
    SELECT LEAST(t.first_pushed_at, g.first_seen_at) AS first_seen_at
    FROM regstat.tags g
    WHERE g.registry = t.registry AND g.repository = t.repository AND g.tag = t.tag
) f ON true
LEFT JOIN LATERAL (
    SELECT COALESCE(
        (SELECT m.created_at FROM regstat.manifests m
         WHERE m.registry = t.registry AND m.repository = t.repository AND m.digest = t.digest),
        (SELECT max(c.created_at) FROM regstat.manifest_references r
         JOIN regstat.manifests c
           ON c.registry = r.registry AND c.repository = r.repository AND c.digest = r.digest
         WHERE r.registry = t.registry AND r.repository = t.repository
           AND r.manifest_digest = t.digest AND r.role = 'manifest')) AS created_at
) cr ON true
CROSS JOIN LATERAL (
    SELECT GREATEST(t.last_pulled_at, vc.last_checked_at, t.pushed_at) AS used_at
) u;

ALTER TABLE regstat.image_rows
    ADD COLUMN first_seen_at    timestamptz,
    ADD COLUMN age_at           timestamptz,
    ADD COLUMN age_source       text,
    ADD COLUMN last_used_source text,
    ADD COLUMN created_at       timestamptz;

CREATE OR REPLACE VIEW regstat.report_images AS
SELECT c.registry, c.repository, c.tag, c.digest, c.media_type, c.platforms, c.size,
       c.pushed_at, c.last_pulled_at, c.pull_count, c.version_checks, c.last_checked_at,
       c.last_used_at, c.first_seen_at, c.age_at, c.age_source, c.last_used_source,
       c.created_at
FROM regstat.image_rows c
WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                  WHERE s.registry = c.registry AND s.repository = c.repository)
UNION ALL
SELECT l.registry, l.repository, l.tag, l.digest, l.media_type, l.platforms, l.size,
       l.pushed_at, l.last_pulled_at, l.pull_count, l.version_checks, l.last_checked_at,
       l.last_used_at, l.first_seen_at, l.age_at, l.age_source, l.last_used_source,
       l.created_at
FROM regstat.stale_repositories s
CROSS JOIN LATERAL (
    SELECT * FROM regstat.images_live i
    WHERE i.registry = s.registry AND i.repository = s.repository
    OFFSET 0 -- computed per stale repository, never the whole view joined afterwards
) l;

-- stale: images older than `days` days (their age: pushed, else created, else first seen).
CREATE OR REPLACE FUNCTION regstat.stale_images(days integer)
RETURNS SETOF regstat.report_images LANGUAGE sql STABLE AS $$
    SELECT * FROM regstat.report_images
    WHERE age_at < now() - make_interval(days => days)
$$;

-- unpulled: images not used for `days` days (pulled, checked or pushed, else first seen).
CREATE OR REPLACE FUNCTION regstat.unpulled_images(days integer)
RETURNS SETOF regstat.report_images LANGUAGE sql STABLE AS $$
    SELECT * FROM regstat.report_images
    WHERE last_used_at < now() - make_interval(days => days)
$$;

-- The cached rows, with the new columns.
DELETE FROM regstat.image_rows;
INSERT INTO regstat.image_rows SELECT * FROM regstat.images_live;
