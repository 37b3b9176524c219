-- Blobs of synced content (docs/MODEL.md, "Backfill and reconciliation"). A registry's API
-- cannot list a repository's blobs, but every config and layer a manifest references is a
-- blob of that repository: when a sync sees manifest R@D at T (manifests.seen_at) with known
-- references, each of them is a live blob of R as of T, with the size the manifest gives,
-- unless its digest was deleted from R after T. Pushed blobs stay as they were; a blob both
-- pushed and referenced by a synced manifest is one row (the pushed one, with its pulls), so
-- events and syncs merge without double counting, in any order.
--
-- Derived at read time, nothing stored: the view keeps its columns (a synced-only blob has no
-- push times and takes its pull counts from a `blobs` row if pulls were recorded), so the
-- per-repository caches, `report_blobs` and the registry totals count these blobs as they
-- are. A sync marks the repositories it writes stale, which recomputes their cached rows.

-- Synced manifests, for the second part of the view: without it, an installation that never
-- synced would scan every manifest each time it counts blobs.
CREATE INDEX manifests_seen_idx ON regstat.manifests (registry, repository, digest)
    WHERE seen_at IS NOT NULL;

CREATE OR REPLACE VIEW regstat.live_blobs AS
SELECT b.registry, b.repository, b.digest, b.size, b.first_pushed_at, b.last_pushed_at,
       b.via_push, b.via_mount, b.mounted_from, b.last_pulled_at, b.pull_count, b.pulled_bytes,
       b.system_pull_count
FROM regstat.blobs b
LEFT JOIN regstat.digest_deletions d USING (registry, repository, digest)
WHERE b.last_pushed_at IS NOT NULL
  AND (d.deleted_at IS NULL OR b.last_pushed_at > d.deleted_at)
UNION ALL
SELECT s.registry, s.repository, s.digest, COALESCE(b.size, s.size),
       NULL::timestamptz, NULL::timestamptz, false, false, NULL::text, b.last_pulled_at,
       COALESCE(b.pull_count, 0), COALESCE(b.pulled_bytes, 0), COALESCE(b.system_pull_count, 0)
FROM (
    -- Configs and layers of live manifests a sync saw: the newest sighting, the largest size.
    SELECT r.registry, r.repository, r.digest, max(r.size) AS size, max(m.seen_at) AS seen_at
    FROM regstat.live_manifests m
    JOIN regstat.manifest_references r
      ON r.registry = m.registry AND r.repository = m.repository
     AND r.manifest_digest = m.digest
    WHERE m.seen_at IS NOT NULL AND r.role IN ('config', 'layer')
    GROUP BY r.registry, r.repository, r.digest
) s
LEFT JOIN regstat.digest_deletions d USING (registry, repository, digest)
LEFT JOIN regstat.blobs b USING (registry, repository, digest)
WHERE (d.deleted_at IS NULL OR s.seen_at > d.deleted_at)
  -- Not pushed and live: that row is in the first part.
  AND NOT (b.last_pushed_at IS NOT NULL
           AND (d.deleted_at IS NULL OR b.last_pushed_at > d.deleted_at));

-- Every repository's cached rows, recomputed with the synced blobs.
INSERT INTO regstat.stale_repositories (registry, repository, marked_at, version)
SELECT registry, repository, now(), nextval('regstat.stale_marks')
FROM (SELECT DISTINCT registry, repository FROM regstat.manifests WHERE seen_at IS NOT NULL) r
ON CONFLICT (registry, repository) DO UPDATE SET version = EXCLUDED.version;
-- The registry-wide figures at the refresher's next pass.
UPDATE regstat.registry_contents SET refreshed_at = '-infinity';
