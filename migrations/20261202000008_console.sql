-- What the console reads (docs/ARCHITECTURE.md, "Console"), and "last used" counting version
-- checks.

-- 1. Tags present now, without their pull times: what counting and listing tags needs (the
-- pull times of `live_tags` join every tag's manifest and children). `live_tags` is the same
-- rows with those times; its columns are unchanged.
CREATE VIEW regstat.current_tags AS
SELECT t.registry, t.repository, t.tag, cur.digest, cur.at, cur.since, t.pushed_at,
       t.first_pushed_at, t.pull_count, t.system_pull_count, t.last_pulled_at, t.seen_at
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
WHERE cur.digest IS NOT NULL
  AND (t.deleted_at IS NULL OR cur.at > t.deleted_at);

CREATE OR REPLACE VIEW regstat.live_tags AS
SELECT c.registry, c.repository, c.tag, c.digest, c.pushed_at, c.first_pushed_at,
       c.pull_count, c.system_pull_count,
       GREATEST(CASE WHEN c.last_pulled_at > c.since THEN c.last_pulled_at END,
                m.last_pulled_at, children.last_pulled_at) AS last_pulled_at,
       c.seen_at
FROM regstat.current_tags c
LEFT JOIN regstat.manifests m
  ON m.registry = c.registry AND m.repository = c.repository AND m.digest = c.digest
LEFT JOIN LATERAL (
    SELECT max(ch.last_pulled_at) AS last_pulled_at
    FROM regstat.manifest_references r
    JOIN regstat.manifests ch
      ON ch.registry = r.registry AND ch.repository = r.repository AND ch.digest = r.digest
    WHERE r.registry = c.registry AND r.repository = c.repository
      AND r.manifest_digest = c.digest AND r.role = 'manifest'
) children ON true;

-- 2. "Last used" is the latest of the last pull, the last version check and the push: an
-- image whose clients only check it (already present, `imagePullPolicy: Always`) is used.
-- Appended to report_images; `unpulled` lists images not used for N days.
CREATE OR REPLACE VIEW regstat.report_images AS
SELECT t.registry, t.repository, t.tag, t.digest, m.media_type,
       COALESCE(pl.platforms, '{}'::text[]) AS platforms,
       s.size, t.pushed_at, t.last_pulled_at, t.pull_count,
       COALESCE(vc.checks, 0) AS version_checks, vc.last_checked_at,
       GREATEST(t.last_pulled_at, vc.last_checked_at, t.pushed_at) AS last_used_at
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

CREATE OR REPLACE FUNCTION regstat.unpulled_images(days integer)
RETURNS SETOF regstat.report_images LANGUAGE sql STABLE AS $$
    SELECT * FROM regstat.report_images
    WHERE last_used_at < now() - make_interval(days => days)
$$;

-- 3. Image pulls per day and repository (the repositories page sorts by pulls in 30 days):
-- counted with repository_stats.pulls, filled from pull_metrics for what is already there.
CREATE TABLE regstat.repository_pulls (
    day                 date NOT NULL,
    registry            text NOT NULL,
    repository          text NOT NULL,
    pulls               bigint NOT NULL,
    system_pulls        bigint NOT NULL,
    PRIMARY KEY (day, registry, repository)
);
CREATE INDEX repository_pulls_repository_idx ON regstat.repository_pulls (registry, repository, day);
INSERT INTO regstat.repository_pulls (day, registry, repository, pulls, system_pulls)
SELECT day, registry, repository,
       COALESCE(sum(pulls) FILTER (WHERE NOT system), 0),
       COALESCE(sum(pulls) FILTER (WHERE system), 0)
FROM regstat.image_pulls
GROUP BY day, registry, repository;

-- Pulls of one repository or one digest by day (the repository and digest pages).
CREATE INDEX pull_metrics_repository_idx ON regstat.pull_metrics (registry, repository, day);
CREATE INDEX pull_metrics_digest_idx ON regstat.pull_metrics (digest, day);
CREATE INDEX version_checks_repository_idx ON regstat.version_checks (registry, repository, tag);

-- 4. The pipeline as the workers last saw it: the console reads PostgreSQL only. Each worker
-- writes what it polls of the broker (messages and consumers per queue) and the newest
-- `received_at` it committed per work queue, every 15 s.
CREATE TABLE regstat.queue_status (
    queue               text PRIMARY KEY,
    role                text NOT NULL,
    messages            bigint NOT NULL,
    consumers           bigint NOT NULL,
    newest_received_at  timestamptz,
    updated_at          timestamptz NOT NULL
);
