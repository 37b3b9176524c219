-- Per-repository caches of what the reports and the console compute, so that reading them
-- costs the rows read, not the size of the model (at 2 million events, the benchmark's model
-- holds 20,000 tags, 135,000 manifests and 214,000 blob links).
--
-- Every "computed for the stale ones" below is a LATERAL subquery with OFFSET 0: it keeps the
-- planner from flattening it into a join with the whole view (which, with few or no stale
-- keys, it would compute entirely, then throw away).
--
-- The model stays the truth and the reports stay exact. Every write marks the repositories it
-- touched as stale, in the writing transaction: an upsert that gives the mark a new version
-- (from one sequence) and holds the mark's row lock until the writer commits. A refresher in
-- the worker takes marks stale for a while (`marked_at`, the first mark, so a busy repository
-- is recomputed at most once per `worker.cache_refresh_ms`), recomputes their rows from the
-- model in one REPEATABLE READ transaction (one snapshot, in which it also read each mark's
-- version) and commits, then deletes each mark whose version is still the one it read. A
-- reader takes cached rows for repositories that are not stale and computes the stale ones
-- from the model: whatever it reads is what the model says at its snapshot.
--
-- Why no write is missed: a write committed before the refresher's snapshot is in the rows it
-- computed; one committed after gave the mark a newer version (or, if the refresher deleted
-- the mark first, a new mark), so the mark stays. The delete waits for a writer holding the
-- mark's lock and then sees its version. The refresher never holds a mark's lock while it
-- computes, so writers never wait for it.

CREATE SEQUENCE regstat.stale_marks;

CREATE TABLE regstat.stale_repositories (
    registry    text NOT NULL,
    repository  text NOT NULL,
    marked_at   timestamptz NOT NULL,
    version     bigint NOT NULL,
    PRIMARY KEY (registry, repository)
);
CREATE INDEX stale_repositories_marked_at_idx ON regstat.stale_repositories (marked_at);

-- Every repository the model knows starts stale (the refresher fills the caches).
INSERT INTO regstat.stale_repositories (registry, repository, marked_at, version)
SELECT registry, repository, now(), nextval('regstat.stale_marks') FROM (
    SELECT registry, repository FROM regstat.repository_stats
    UNION SELECT registry, repository FROM regstat.tags
    UNION SELECT registry, repository FROM regstat.manifests
    UNION SELECT registry, repository FROM regstat.blobs
) r;

-- 1. A manifest's size, one manifest at a time: the bytes of its config and layers, or of its
-- children's for an index (each blob once). A table function, so that a LATERAL call is
-- planned as a handful of index lookups where joining the aggregate view first aggregated
-- every manifest. manifest_sizes is defined with it (the rule is written here only).
CREATE FUNCTION regstat.manifest_size_of(registry text, repository text, digest text)
RETURNS TABLE (size bigint) LANGUAGE sql STABLE AS $$
    SELECT sum(b.size)::bigint FROM (
        SELECT r.digest, r.size FROM regstat.manifest_references r
        WHERE r.registry = $1 AND r.repository = $2
          AND r.manifest_digest = $3 AND r.role IN ('config', 'layer')
        UNION
        SELECT c.digest, c.size FROM regstat.manifest_references i
        JOIN regstat.manifest_references c
          ON c.registry = i.registry AND c.repository = i.repository
         AND c.manifest_digest = i.digest AND c.role IN ('config', 'layer')
        WHERE i.registry = $1 AND i.repository = $2
          AND i.manifest_digest = $3 AND i.role = 'manifest'
    ) b
$$;

CREATE OR REPLACE VIEW regstat.manifest_sizes AS
SELECT m.registry, m.repository, m.digest, s.size
FROM regstat.manifests m
CROSS JOIN LATERAL regstat.manifest_size_of(m.registry, m.repository, m.digest) s
WHERE s.size IS NOT NULL;

-- 2. Images (one row per live tag), computed one tag at a time: each LATERAL is a handful of
-- index lookups, where joining the aggregate views aggregated every manifest first.
CREATE VIEW regstat.images_live AS
SELECT t.registry, t.repository, t.tag, t.digest, m.media_type,
       COALESCE(pl.platforms, '{}'::text[]) AS platforms,
       s.size, t.pushed_at, t.last_pulled_at, t.pull_count,
       COALESCE(vc.checks, 0) AS version_checks, vc.last_checked_at,
       GREATEST(t.last_pulled_at, vc.last_checked_at, t.pushed_at) AS last_used_at
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
) vc ON true;

CREATE TABLE regstat.image_rows (
    registry        text NOT NULL,
    repository      text NOT NULL,
    tag             text NOT NULL,
    digest          text,
    media_type      text,
    platforms       text[],
    size            bigint,
    pushed_at       timestamptz,
    last_pulled_at  timestamptz,
    pull_count      bigint,
    version_checks  bigint,
    last_checked_at timestamptz,
    last_used_at    timestamptz,
    PRIMARY KEY (registry, repository, tag)
);
CREATE INDEX image_rows_digest_idx ON regstat.image_rows (digest);

CREATE OR REPLACE VIEW regstat.report_images AS
SELECT c.registry, c.repository, c.tag, c.digest, c.media_type, c.platforms, c.size,
       c.pushed_at, c.last_pulled_at, c.pull_count, c.version_checks, c.last_checked_at,
       c.last_used_at
FROM regstat.image_rows c
WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                  WHERE s.registry = c.registry AND s.repository = c.repository)
UNION ALL
SELECT l.registry, l.repository, l.tag, l.digest, l.media_type, l.platforms, l.size,
       l.pushed_at, l.last_pulled_at, l.pull_count, l.version_checks, l.last_checked_at,
       l.last_used_at
FROM regstat.stale_repositories s
CROSS JOIN LATERAL (
    SELECT * FROM regstat.images_live i
    WHERE i.registry = s.registry AND i.repository = s.repository
    OFFSET 0 -- computed per stale repository, never the whole view joined afterwards
) l;

-- 3. What each repository holds: live tags and manifests, its live blobs and their bytes.
CREATE FUNCTION regstat.contents_of(registry text, repository text)
RETURNS TABLE (tags bigint, manifests bigint, blobs bigint, blob_bytes bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM regstat.live_tags t
            WHERE t.registry = $1 AND t.repository = $2),
           (SELECT count(*) FROM regstat.live_manifests m
            WHERE m.registry = $1 AND m.repository = $2),
           b.blobs, b.bytes
    FROM (SELECT count(*) AS blobs, COALESCE(sum(size), 0)::bigint AS bytes
          FROM regstat.live_blobs b WHERE b.registry = $1 AND b.repository = $2) b
$$;

CREATE TABLE regstat.repository_contents (
    registry      text NOT NULL,
    repository    text NOT NULL,
    tags          bigint NOT NULL,
    manifests     bigint NOT NULL,
    blobs         bigint NOT NULL,
    blob_bytes    bigint NOT NULL,
    refreshed_at  timestamptz NOT NULL,
    PRIMARY KEY (registry, repository)
);

-- Every repository the model knows, with what it holds now.
CREATE VIEW regstat.repositories_now AS
SELECT c.registry, c.repository, c.tags, c.manifests, c.blobs, c.blob_bytes
FROM regstat.repository_contents c
WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                  WHERE s.registry = c.registry AND s.repository = c.repository)
UNION ALL
SELECT s.registry, s.repository, l.tags, l.manifests, l.blobs, l.blob_bytes
FROM regstat.stale_repositories s
CROSS JOIN LATERAL regstat.contents_of(s.registry, s.repository) l;

CREATE OR REPLACE VIEW regstat.report_repositories AS
SELECT r.registry, r.repository, r.tags, r.manifests,
       COALESCE(s.pushes, 0::bigint) AS pushes, COALESCE(s.pulls, 0::bigint) AS pulls,
       s.first_push_at, s.last_push_at, s.first_pull_at, s.last_pull_at,
       COALESCE((SELECT array_agg(DISTINCT a.actor ORDER BY a.actor) FROM regstat.actors a
                 WHERE a.registry = r.registry AND a.repository = r.repository
                   AND a.actor <> ''), '{}'::text[]) AS actors
FROM regstat.repositories_now r
LEFT JOIN regstat.repository_stats s USING (registry, repository);

-- 4. The per-repository lines of `blobs` from the cache (the per-registry line counts each
-- digest once across repositories, from the model).
CREATE OR REPLACE VIEW regstat.report_blobs AS
SELECT registry, repository, blobs, blob_bytes AS bytes
FROM regstat.repositories_now
WHERE blobs > 0
UNION ALL
SELECT registry, NULL, count(*), COALESCE(sum(size), 0)::bigint
FROM (SELECT DISTINCT ON (registry, digest) registry, digest, size
      FROM regstat.live_blobs ORDER BY registry, digest) d
GROUP BY registry;

-- 5. most-tags from the image rows.
CREATE OR REPLACE VIEW regstat.report_most_tags AS
SELECT registry, repository, digest, media_type, count(*) AS tags,
       array_agg(tag ORDER BY tag) AS tag_names
FROM regstat.report_images
GROUP BY registry, repository, digest, media_type;

-- 6. Blobs no live manifest of their repository references (orphaned-blobs applies its grace
-- window at read time), and live manifests referencing blobs deleted since (missing-blobs).
CREATE VIEW regstat.unreferenced_blobs AS
SELECT b.registry, b.repository, b.digest, b.size, b.last_pushed_at
FROM regstat.live_blobs b
WHERE NOT EXISTS (
    SELECT 1 FROM regstat.manifest_references r
    JOIN regstat.live_manifests m
      ON m.registry = r.registry AND m.repository = r.repository
     AND m.digest = r.manifest_digest
    WHERE r.registry = b.registry AND r.repository = b.repository
      AND r.digest = b.digest AND r.role IN ('config', 'layer'));

CREATE TABLE regstat.unreferenced_blob_rows (
    registry        text NOT NULL,
    repository      text NOT NULL,
    digest          text NOT NULL,
    size            bigint,
    last_pushed_at  timestamptz,
    PRIMARY KEY (registry, repository, digest)
);

CREATE OR REPLACE FUNCTION regstat.orphaned_blobs(grace interval)
RETURNS TABLE (registry text, repository text, digest text, size bigint,
               last_pushed_at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT u.registry, u.repository, u.digest, u.size, u.last_pushed_at FROM (
        SELECT c.registry, c.repository, c.digest, c.size, c.last_pushed_at
        FROM regstat.unreferenced_blob_rows c
        WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                          WHERE s.registry = c.registry AND s.repository = c.repository)
        UNION ALL
        SELECT l.registry, l.repository, l.digest, l.size, l.last_pushed_at
        FROM regstat.stale_repositories s
        CROSS JOIN LATERAL (
            SELECT * FROM regstat.unreferenced_blobs b
            WHERE b.registry = s.registry AND b.repository = s.repository
            OFFSET 0 -- per stale repository
        ) l
    ) u
    WHERE u.last_pushed_at < now() - grace
$$;

CREATE VIEW regstat.missing_blobs_live AS
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

CREATE TABLE regstat.missing_blob_rows (
    registry        text NOT NULL,
    repository      text NOT NULL,
    manifest_digest text NOT NULL,
    role            text NOT NULL,
    blob_digest     text NOT NULL,
    size            bigint,
    blob_deleted_at timestamptz,
    PRIMARY KEY (registry, repository, manifest_digest, role, blob_digest)
);

CREATE OR REPLACE VIEW regstat.report_missing_blobs AS
SELECT c.registry, c.repository, c.manifest_digest, c.role, c.blob_digest, c.size,
       c.blob_deleted_at
FROM regstat.missing_blob_rows c
WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                  WHERE s.registry = c.registry AND s.repository = c.repository)
UNION ALL
SELECT l.registry, l.repository, l.manifest_digest, l.role, l.blob_digest, l.size,
       l.blob_deleted_at
FROM regstat.stale_repositories s
CROSS JOIN LATERAL (
    SELECT * FROM regstat.missing_blobs_live b
    WHERE b.registry = s.registry AND b.repository = s.repository
    OFFSET 0 -- per stale repository
) l;

-- 7. Registry-wide live blobs, each digest counted once however many repositories link it, and
-- their bytes: one figure per registry, so no per-repository scheme makes it exact cheaply.
-- The refresher recomputes it at most once a minute while the registry's repositories
-- change (and at once when it does not exist); the console shows the time it is as of.
CREATE TABLE regstat.registry_contents (
    registry      text PRIMARY KEY,
    blobs         bigint NOT NULL,
    blob_bytes    bigint NOT NULL,
    refreshed_at  timestamptz NOT NULL
);

-- 8. Image pulls per day and registry (the `pulls` report, the overview's chart): written with
-- repository_pulls, from the same counts, so the report reads a row per day.
CREATE TABLE regstat.registry_pulls (
    day                 date NOT NULL,
    registry            text NOT NULL,
    pulls               bigint NOT NULL,
    system_pulls        bigint NOT NULL,
    PRIMARY KEY (day, registry)
);
INSERT INTO regstat.registry_pulls (day, registry, pulls, system_pulls)
SELECT day, registry, sum(pulls), sum(system_pulls)
FROM regstat.repository_pulls
GROUP BY day, registry;

CREATE OR REPLACE FUNCTION regstat.pulls_per_day(days integer)
RETURNS TABLE (day date, registry text, pulls bigint, system_pulls bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.day, p.registry, p.pulls, p.system_pulls
    FROM regstat.registry_pulls p
    WHERE p.day > (now() AT TIME ZONE 'UTC')::date - days
$$;

-- 9. Image pulls per platform, per repository and day (the `architectures` report, the
-- overview's platforms): the platform of a pulled manifest is a lookup per digest, too slow
-- over a month of pulls, so each (repository, day) is cached like a repository above. A
-- write marks the (repository, day)s whose pulls it changes, and those whose platform it may
-- change: days on which a manifest whose content (or an index listing it) it writes was
-- pulled. Writers of content and of pulls take an advisory lock per (repository, digest)
-- first (store/src/model/locks.rs), so a content write either sees a concurrent first pull of
-- the digest and marks its day, or is seen by the refresher that computes that day.
CREATE TABLE regstat.stale_pull_days (
    registry    text NOT NULL,
    repository  text NOT NULL,
    day         date NOT NULL,
    marked_at   timestamptz NOT NULL,
    version     bigint NOT NULL,
    PRIMARY KEY (registry, repository, day)
);
CREATE INDEX stale_pull_days_marked_at_idx ON regstat.stale_pull_days (marked_at);
INSERT INTO regstat.stale_pull_days (registry, repository, day, marked_at, version)
SELECT registry, repository, day, now(), nextval('regstat.stale_marks')
FROM (SELECT DISTINCT registry, repository, day FROM regstat.pull_metrics) d;

CREATE VIEW regstat.platform_pulls_live AS
SELECT p.registry, p.repository, p.day, mp.os, mp.architecture, mp.variant,
       sum(p.pulls)::bigint AS pulls
FROM regstat.image_pulls p
LEFT JOIN regstat.manifest_platforms mp USING (registry, repository, digest)
WHERE NOT p.system
GROUP BY p.registry, p.repository, p.day, mp.os, mp.architecture, mp.variant;

CREATE TABLE regstat.platform_pull_rows (
    registry      text NOT NULL,
    repository    text NOT NULL,
    day           date NOT NULL,
    os            text,
    architecture  text,
    variant       text,
    pulls         bigint NOT NULL
);
CREATE INDEX platform_pull_rows_key_idx ON regstat.platform_pull_rows (registry, repository, day);
CREATE INDEX platform_pull_rows_day_idx ON regstat.platform_pull_rows (day);

CREATE OR REPLACE FUNCTION regstat.pulls_by_platform(days integer)
RETURNS TABLE (registry text, os text, architecture text, variant text, pulls bigint)
LANGUAGE sql STABLE AS $$
    SELECT u.registry, u.os, u.architecture, u.variant, sum(u.pulls)::bigint FROM (
        SELECT c.registry, c.os, c.architecture, c.variant, c.pulls
        FROM regstat.platform_pull_rows c
        WHERE c.day > (now() AT TIME ZONE 'UTC')::date - days
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
        WHERE s.day > (now() AT TIME ZONE 'UTC')::date - days
    ) u
    GROUP BY u.registry, u.os, u.architecture, u.variant
$$;

-- 10. Lookups by digest alone (the digest page, search by digest prefix).
CREATE INDEX tags_seen_digest_idx ON regstat.tags (seen_digest);
CREATE INDEX tags_digest_only_idx ON regstat.tags (digest);
-- text_pattern_ops: equality, and the prefix ranges of a digest search (~>=~, ~<~).
CREATE INDEX manifests_digest_only_idx ON regstat.manifests (digest text_pattern_ops);
CREATE INDEX manifests_subject_idx ON regstat.manifests (subject_digest)
    WHERE subject_digest IS NOT NULL;
CREATE INDEX blobs_digest_only_idx ON regstat.blobs (digest);
CREATE INDEX manifest_references_child_idx ON regstat.manifest_references (digest)
    WHERE role IN ('manifest', 'subject');
CREATE INDEX manifest_references_parent_idx ON regstat.manifest_references (manifest_digest);
