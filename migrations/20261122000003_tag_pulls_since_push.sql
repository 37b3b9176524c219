-- A tag's own pulls count towards its "last pulled" time only when they happened after its
-- newest push: a pull by tag before the tag moved fetched the content it pointed at then.
-- (Pulls of the manifest it points at now, by digest or through an index's child, still
-- count whenever they happened: that is the same content.) Still order-independent: it only
-- compares two GREATEST-merged times.
CREATE OR REPLACE VIEW regstat.live_tags AS
SELECT t.registry, t.repository, t.tag, t.digest, t.pushed_at, t.first_pushed_at,
       t.pull_count, t.system_pull_count,
       GREATEST(CASE WHEN t.last_pulled_at > t.pushed_at THEN t.last_pulled_at END,
                m.last_pulled_at, children.last_pulled_at) AS last_pulled_at
FROM regstat.tags t
LEFT JOIN regstat.manifests m USING (registry, repository, digest)
LEFT JOIN LATERAL (
    SELECT max(c.last_pulled_at) AS last_pulled_at
    FROM regstat.manifest_references r
    JOIN regstat.manifests c
      ON c.registry = r.registry AND c.repository = r.repository AND c.digest = r.digest
    WHERE r.registry = t.registry AND r.repository = t.repository
      AND r.manifest_digest = t.digest AND r.role = 'manifest'
) children ON true
WHERE t.digest IS NOT NULL
  AND (t.deleted_at IS NULL OR t.pushed_at > t.deleted_at);
