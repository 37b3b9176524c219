-- Answers: every report of `regstat report NAME` is one of these views or functions, so psql
-- and Grafana users get the same answers as the CLI. Times are timestamptz; sizes in bytes.

-- Bytes of the distinct blobs (config and layers) of a manifest; for an index, of its
-- children's blobs.
CREATE VIEW regstat.manifest_sizes AS
SELECT registry, repository, digest, sum(size)::bigint AS size
FROM (
    SELECT r.registry, r.repository, r.manifest_digest AS digest, r.digest AS blob, r.size
    FROM regstat.manifest_references r
    WHERE r.role IN ('config', 'layer')
    UNION
    SELECT i.registry, i.repository, i.manifest_digest, c.digest, c.size
    FROM regstat.manifest_references i
    JOIN regstat.manifest_references c
      ON c.registry = i.registry AND c.repository = i.repository
     AND c.manifest_digest = i.digest AND c.role IN ('config', 'layer')
    WHERE i.role = 'manifest'
) blobs
GROUP BY registry, repository, digest;

-- Platforms of a manifest as `os/architecture[/variant]`: an index's children's, else its own.
CREATE VIEW regstat.manifest_platform_list AS
SELECT m.registry, m.repository, m.digest,
       COALESCE(
           (SELECT array_agg(DISTINCT concat_ws('/', r.os, r.architecture, r.variant)
                             ORDER BY concat_ws('/', r.os, r.architecture, r.variant))
            FROM regstat.manifest_references r
            WHERE r.registry = m.registry AND r.repository = m.repository
              AND r.manifest_digest = m.digest AND r.role = 'manifest'
              AND r.architecture IS NOT NULL),
           CASE WHEN m.architecture IS NOT NULL
                THEN ARRAY[concat_ws('/', m.os, m.architecture, m.variant)] END,
           '{}'::text[]) AS platforms
FROM regstat.manifest_platforms m;

-- GETs of image manifests (not indexes): one per image pulled.
CREATE VIEW regstat.image_pulls AS
SELECT p.*
FROM regstat.pull_metrics p
LEFT JOIN regstat.manifests m USING (registry, repository, digest)
WHERE m.media_type IS NULL
   OR m.media_type NOT IN ('application/vnd.oci.image.index.v1+json',
                           'application/vnd.docker.distribution.manifest.list.v2+json');

-- images: every live tag with its manifest.
CREATE VIEW regstat.report_images AS
SELECT t.registry, t.repository, t.tag, t.digest, m.media_type,
       COALESCE(pl.platforms, '{}'::text[]) AS platforms,
       s.size, t.pushed_at, t.last_pulled_at, t.pull_count
FROM regstat.live_tags t
LEFT JOIN regstat.manifests m USING (registry, repository, digest)
LEFT JOIN regstat.manifest_platform_list pl USING (registry, repository, digest)
LEFT JOIN regstat.manifest_sizes s USING (registry, repository, digest);

-- repositories: what each holds and how it is used.
CREATE VIEW regstat.report_repositories AS
WITH repositories AS (
    SELECT registry, repository FROM regstat.repository_stats
    UNION SELECT registry, repository FROM regstat.tags
    UNION SELECT registry, repository FROM regstat.manifests
    UNION SELECT registry, repository FROM regstat.blobs
)
SELECT r.registry, r.repository,
       (SELECT count(*) FROM regstat.live_tags t
        WHERE t.registry = r.registry AND t.repository = r.repository) AS tags,
       (SELECT count(*) FROM regstat.live_manifests m
        WHERE m.registry = r.registry AND m.repository = r.repository) AS manifests,
       COALESCE(s.pushes, 0) AS pushes, COALESCE(s.pulls, 0) AS pulls,
       s.first_push_at, s.last_push_at, s.first_pull_at, s.last_pull_at,
       COALESCE((SELECT array_agg(DISTINCT a.actor ORDER BY a.actor) FROM regstat.actors a
                 WHERE a.registry = r.registry AND a.repository = r.repository
                   AND a.actor <> ''), '{}'::text[]) AS actors
FROM repositories r
LEFT JOIN regstat.repository_stats s USING (registry, repository);

-- blobs: count and bytes of live blobs per repository, and per registry (repository NULL,
-- each digest once however many repositories link it).
CREATE VIEW regstat.report_blobs AS
SELECT registry, repository, count(*) AS blobs, COALESCE(sum(size), 0)::bigint AS bytes
FROM regstat.live_blobs
GROUP BY registry, repository
UNION ALL
SELECT registry, NULL, count(*), COALESCE(sum(size), 0)::bigint
FROM (SELECT DISTINCT ON (registry, digest) registry, digest, size
      FROM regstat.live_blobs ORDER BY registry, digest) d
GROUP BY registry;

-- stale: images pushed more than `days` days ago.
CREATE FUNCTION regstat.stale_images(days integer)
RETURNS SETOF regstat.report_images LANGUAGE sql STABLE AS $$
    SELECT * FROM regstat.report_images
    WHERE pushed_at < now() - make_interval(days => days)
$$;

-- unpulled: images not pulled for `days` days (never pulled: counted from their push).
CREATE FUNCTION regstat.unpulled_images(days integer)
RETURNS SETOF regstat.report_images LANGUAGE sql STABLE AS $$
    SELECT * FROM regstat.report_images
    WHERE COALESCE(last_pulled_at, pushed_at) < now() - make_interval(days => days)
$$;

-- orphaned-blobs: live blobs no live manifest of their repository references, linked before
-- the grace window (layers arrive before their manifest).
CREATE FUNCTION regstat.orphaned_blobs(grace interval)
RETURNS TABLE (registry text, repository text, digest text, size bigint,
               last_pushed_at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT b.registry, b.repository, b.digest, b.size, b.last_pushed_at
    FROM regstat.live_blobs b
    WHERE b.last_pushed_at < now() - grace
      AND NOT EXISTS (
          SELECT 1 FROM regstat.manifest_references r
          JOIN regstat.live_manifests m
            ON m.registry = r.registry AND m.repository = r.repository
           AND m.digest = r.manifest_digest
          WHERE r.registry = b.registry AND r.repository = b.repository
            AND r.digest = b.digest AND r.role IN ('config', 'layer'))
$$;

-- missing-blobs: live manifests referencing blobs deleted from their repository since.
CREATE VIEW regstat.report_missing_blobs AS
SELECT m.registry, m.repository, m.digest AS manifest_digest, r.role, r.digest AS blob_digest,
       r.size, d.deleted_at AS blob_deleted_at
FROM regstat.live_manifests m
JOIN regstat.manifest_references r
  ON r.registry = m.registry AND r.repository = m.repository
 AND r.manifest_digest = m.digest AND r.role IN ('config', 'layer')
JOIN regstat.digest_deletions d
  ON d.registry = r.registry AND d.repository = r.repository AND d.digest = r.digest
LEFT JOIN regstat.blobs b
  ON b.registry = r.registry AND b.repository = r.repository AND b.digest = r.digest
WHERE b.last_pushed_at IS NULL OR d.deleted_at >= b.last_pushed_at;

-- most-tags: manifests by number of live tags.
CREATE VIEW regstat.report_most_tags AS
SELECT t.registry, t.repository, t.digest, m.media_type, count(*) AS tags,
       array_agg(t.tag ORDER BY t.tag) AS tag_names
FROM regstat.live_tags t
LEFT JOIN regstat.manifests m USING (registry, repository, digest)
GROUP BY t.registry, t.repository, t.digest, m.media_type;

-- top-pulled: tags by pulls naming them in the last `days` days (system pulls excluded).
CREATE FUNCTION regstat.top_pulled(days integer)
RETURNS TABLE (registry text, repository text, tag text, pulls bigint,
               last_day date) LANGUAGE sql STABLE AS $$
    SELECT p.registry, p.repository, p.tag, sum(p.pulls)::bigint, max(p.day)
    FROM regstat.pull_metrics p
    WHERE NOT p.system AND p.tag <> ''
      AND p.day > (now() AT TIME ZONE 'UTC')::date - days
    GROUP BY p.registry, p.repository, p.tag
$$;

-- pulls: image pulls per day (system pulls apart).
CREATE FUNCTION regstat.pulls_per_day(days integer)
RETURNS TABLE (day date, registry text, pulls bigint, system_pulls bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.day, p.registry,
           COALESCE(sum(p.pulls) FILTER (WHERE NOT p.system), 0)::bigint,
           COALESCE(sum(p.pulls) FILTER (WHERE p.system), 0)::bigint
    FROM regstat.image_pulls p
    WHERE p.day > (now() AT TIME ZONE 'UTC')::date - days
    GROUP BY p.day, p.registry
$$;

-- architectures: image pulls per platform in the last `days` days.
CREATE FUNCTION regstat.pulls_by_platform(days integer)
RETURNS TABLE (registry text, os text, architecture text, variant text, pulls bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.registry, mp.os, mp.architecture, mp.variant, sum(p.pulls)::bigint
    FROM regstat.image_pulls p
    LEFT JOIN regstat.manifest_platforms mp USING (registry, repository, digest)
    WHERE NOT p.system AND p.day > (now() AT TIME ZONE 'UTC')::date - days
    GROUP BY p.registry, mp.os, mp.architecture, mp.variant
$$;

-- history: pushes, pulls, mounts and deletes from the ledger, newest first.
CREATE VIEW regstat.report_history AS
SELECT e.occurred_at, e.request_host AS registry_host, e.repository, e.action, e.tag,
       e.digest, e.media_type, e.actor, e.request_method, e.request_useragent,
       e.request_addr, e.id AS event_id
FROM regstat.events e
WHERE e.action IN ('push', 'pull', 'mount', 'delete');
