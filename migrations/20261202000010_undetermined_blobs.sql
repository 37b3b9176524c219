-- Unknown is not orphaned. A blob is "unreferenced" (orphaned-blobs) only when every live
-- manifest of its repository has known content: read from the registry (`fetched`) or from the
-- event's references (`from_event`). A repository with a live manifest of unknown content (no
-- [[registries]] entry and no `includereferences`, a callback that found it gone, a manifest
-- only synced without content) may reference any of its blobs, so its blobs that no known
-- manifest references are "undetermined", listed apart with the reason, never orphaned.
--
-- The view keeps its columns, so its cache (`unreferenced_blob_rows`, recomputed below) and
-- `orphaned_blobs` stay as they are. A manifest's content changes in the same writes that mark
-- its repository stale, so the refresher recomputes the repository's rows when it does.

CREATE OR REPLACE VIEW regstat.unreferenced_blobs AS
SELECT b.registry, b.repository, b.digest, b.size, b.last_pushed_at
FROM regstat.live_blobs b
WHERE NOT EXISTS (
    SELECT 1 FROM regstat.manifest_references r
    JOIN regstat.live_manifests m
      ON m.registry = r.registry AND m.repository = r.repository
     AND m.digest = r.manifest_digest
    WHERE r.registry = b.registry AND r.repository = b.repository
      AND r.digest = b.digest AND r.role IN ('config', 'layer'))
  AND NOT EXISTS (
    SELECT 1 FROM regstat.live_manifests m
    WHERE m.registry = b.registry AND m.repository = b.repository
      AND m.fetch_status NOT IN ('fetched', 'from_event'));

-- Blobs no manifest of known content references, in repositories where some live manifest's
-- content is unknown: `unknown_manifests` of them (counted once per repository), and why (the
-- most common status among them). Not cached: it matters where callbacks are not configured,
-- and is read rarely.
CREATE VIEW regstat.undetermined_blobs AS
SELECT b.registry, b.repository, b.digest, b.size, b.last_pushed_at,
       u.unknown_manifests,
       CASE u.status
           WHEN 'no_registry' THEN 'pushed without references in the event and no [[registries]] entry to call back; set notifications.events.includereferences or add the registry'
           WHEN 'gone' THEN 'the registry answered 404 when regstat called back for the manifest'
           ELSE 'manifest content never read (seen only by sync, pulls or deletes); run regstat sync with a [[registries]] entry'
       END AS reason
FROM regstat.live_blobs b
JOIN (
    SELECT m.registry, m.repository, count(*) AS unknown_manifests,
           mode() WITHIN GROUP (ORDER BY m.fetch_status) AS status
    FROM regstat.live_manifests m
    WHERE m.fetch_status NOT IN ('fetched', 'from_event')
    GROUP BY m.registry, m.repository
) u ON u.registry = b.registry AND u.repository = b.repository
WHERE NOT EXISTS (
    SELECT 1 FROM regstat.manifest_references r
    JOIN regstat.live_manifests m
      ON m.registry = r.registry AND m.repository = r.repository
     AND m.digest = r.manifest_digest
    WHERE r.registry = b.registry AND r.repository = b.repository
      AND r.digest = b.digest AND r.role IN ('config', 'layer'));

-- The cached rows, recomputed with the new definition.
DELETE FROM regstat.unreferenced_blob_rows;
INSERT INTO regstat.unreferenced_blob_rows (registry, repository, digest, size, last_pushed_at)
SELECT registry, repository, digest, size, last_pushed_at FROM regstat.unreferenced_blobs;
