-- Observations from `regstat sync` (docs/MODEL.md, "Backfill and reconciliation").
--
-- A sync at time T walks a registry's catalog and tag lists and records what it saw: "tag
-- R:t names digest D at T", "manifest R@D exists at T", and, for what the registry no longer
-- has, tombstones at T (tags.deleted_at, digest_deletions). It never records a push or a
-- pull. Observations merge like pushes (newest wins, ties to the greater digest; GREATEST),
-- so the state still depends only on the set of events and observations, not their order.

-- The tag's newest observation: the digest it named, and when. Ties: the greater digest.
ALTER TABLE regstat.tags
    ADD COLUMN seen_digest text,
    ADD COLUMN seen_at     timestamptz;

-- The newest time a sync found the manifest in its repository.
ALTER TABLE regstat.manifests
    ADD COLUMN seen_at     timestamptz;

-- Manifests present now: pushed or seen after the newest delete of their digest.
-- (`m.*` now ends with seen_at: a column appended, which dependent views allow.)
CREATE OR REPLACE VIEW regstat.live_manifests AS
SELECT m.*
FROM regstat.manifests m
LEFT JOIN regstat.digest_deletions d USING (registry, repository, digest)
WHERE GREATEST(m.last_pushed_at, m.seen_at) IS NOT NULL
  AND (d.deleted_at IS NULL OR GREATEST(m.last_pushed_at, m.seen_at) > d.deleted_at);

-- Tags present now. A tag's current (time, digest) is the greater of its newest push
-- (pushed_at, digest) and its newest observation (seen_at, seen_digest); it is live when that
-- time is after its newest delete. `digest` is the current digest; `pushed_at` stays the push
-- time (NULL for a tag only ever observed). Its own pulls count towards "last pulled" when
-- they came after it started naming its current digest: the push time if the push named it,
-- else the observation time (when it moved is not known). Same columns as before, plus
-- seen_at at the end.
CREATE OR REPLACE VIEW regstat.live_tags AS
SELECT t.registry, t.repository, t.tag, cur.digest, t.pushed_at, t.first_pushed_at,
       t.pull_count, t.system_pull_count,
       GREATEST(CASE WHEN t.last_pulled_at > cur.since THEN t.last_pulled_at END,
                m.last_pulled_at, children.last_pulled_at) AS last_pulled_at,
       t.seen_at
FROM regstat.tags t
CROSS JOIN LATERAL (
    SELECT CASE WHEN o.observed THEN t.seen_digest ELSE t.digest END AS digest,
           CASE WHEN o.observed THEN t.seen_at ELSE t.pushed_at END AS at,
           CASE WHEN o.observed AND t.seen_digest IS DISTINCT FROM t.digest
                THEN t.seen_at ELSE t.pushed_at END AS since
    FROM (SELECT t.seen_at IS NOT NULL
                 AND (t.pushed_at IS NULL
                      OR (t.seen_at, t.seen_digest) > (t.pushed_at, t.digest)) AS observed) o
) cur
LEFT JOIN regstat.manifests m
  ON m.registry = t.registry AND m.repository = t.repository AND m.digest = cur.digest
LEFT JOIN LATERAL (
    SELECT max(c.last_pulled_at) AS last_pulled_at
    FROM regstat.manifest_references r
    JOIN regstat.manifests c
      ON c.registry = r.registry AND c.repository = r.repository AND c.digest = r.digest
    WHERE r.registry = t.registry AND r.repository = t.repository
      AND r.manifest_digest = cur.digest AND r.role = 'manifest'
) children ON true
WHERE cur.digest IS NOT NULL
  AND (t.deleted_at IS NULL OR cur.at > t.deleted_at);

-- The audit trail: a delete of a manifest known only from a sync is a manifest delete too.
CREATE OR REPLACE VIEW regstat.deletion_log AS
SELECT d.*,
       CASE
           WHEN d.tag IS NOT NULL THEN 'tag'
           WHEN EXISTS (SELECT 1 FROM regstat.manifests m
                        WHERE (m.registry, m.repository, m.digest) = (d.registry, d.repository, d.digest)
                          AND (m.last_pushed_at IS NOT NULL OR m.seen_at IS NOT NULL)) THEN 'manifest'
           WHEN EXISTS (SELECT 1 FROM regstat.blobs b
                        WHERE (b.registry, b.repository, b.digest) = (d.registry, d.repository, d.digest)) THEN 'blob'
           ELSE 'unknown'
       END AS kind
FROM regstat.deletions d;
