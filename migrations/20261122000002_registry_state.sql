-- Registry state derived from the ledger. docs/MODEL.md gives the rule behind every column.
--
-- Every table is keyed by registry (canonical name) and repository, never by digest alone.
-- Every update is commutative (sums, LEAST/GREATEST, "newest wins" with a deterministic
-- tie-break), so the state depends only on the set of events applied, not on their order.
-- Deletions are tombstones (a time), and liveness is computed in views: a delete wins over
-- older pushes and loses to newer ones, whatever order they arrive in.

-- Rank of manifests.fetch_status: the most informative status wins.
CREATE FUNCTION regstat.fetch_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'fetched' THEN 4 WHEN 'from_event' THEN 3 WHEN 'gone' THEN 2
        WHEN 'no_registry' THEN 1 ELSE 0 END
$$;

-- Blobs linked into a repository (by push or mount), and their pulls.
CREATE TABLE regstat.blobs (
    registry            text NOT NULL,
    repository          text NOT NULL,
    digest              text NOT NULL,
    size                bigint,
    -- First and last time the blob was linked into the repository (push or mount).
    first_pushed_at     timestamptz,
    last_pushed_at      timestamptz,
    via_push            boolean NOT NULL DEFAULT false,
    via_mount           boolean NOT NULL DEFAULT false,
    -- Source repository of a mount (the greatest name, if mounted from several).
    mounted_from        text,
    last_pulled_at      timestamptz,
    pull_count          bigint NOT NULL DEFAULT 0,
    pulled_bytes        bigint NOT NULL DEFAULT 0,
    -- Pulls by automated clients (worker.system_user_agents): counted, never "last pulled".
    system_pull_count   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (registry, repository, digest)
);
CREATE INDEX blobs_digest_idx ON regstat.blobs (registry, digest);

-- Manifests (images, indexes, artifacts) in a repository.
CREATE TABLE regstat.manifests (
    registry            text NOT NULL,
    repository          text NOT NULL,
    digest              text NOT NULL,
    media_type          text,
    size                bigint,
    first_pushed_at     timestamptz,
    last_pushed_at      timestamptz,
    last_pulled_at      timestamptz,
    -- GET requests for this manifest (HEAD only checks and is not counted).
    pull_count          bigint NOT NULL DEFAULT 0,
    system_pull_count   bigint NOT NULL DEFAULT 0,
    -- Content: immutable for a digest, so the first known value is kept.
    config_digest       text,
    os                  text,
    architecture        text,
    variant             text,
    artifact_type       text,
    subject_digest      text,
    -- How much of the content is known: unknown (only seen in pulls or deletes),
    -- no_registry (pushed, no callback possible, no references in the event),
    -- gone (the registry answered 404 when called back), from_event (references from the
    -- event, no callback), fetched (read from the registry). The most informative wins.
    fetch_status        text NOT NULL DEFAULT 'unknown'
        CHECK (fetch_status IN ('unknown', 'no_registry', 'gone', 'from_event', 'fetched')),
    PRIMARY KEY (registry, repository, digest)
);
CREATE INDEX manifests_digest_idx ON regstat.manifests (registry, digest);

-- What a manifest references: its config and layers (images), its children (indexes, with
-- their platform), its subject (referrers).
CREATE TABLE regstat.manifest_references (
    registry            text NOT NULL,
    repository          text NOT NULL,
    manifest_digest     text NOT NULL,
    role                text NOT NULL CHECK (role IN ('config', 'layer', 'manifest', 'subject')),
    position            integer NOT NULL,
    digest              text NOT NULL,
    media_type          text,
    size                bigint,
    os                  text,
    architecture        text,
    variant             text,
    PRIMARY KEY (registry, repository, manifest_digest, role, position)
);
CREATE INDEX manifest_references_digest_idx
    ON regstat.manifest_references (registry, repository, digest);

-- Tags: the manifest of the newest push (ties broken by the greater digest), and the newest
-- tag delete. Live when pushed after the newest delete.
CREATE TABLE regstat.tags (
    registry            text NOT NULL,
    repository          text NOT NULL,
    tag                 text NOT NULL,
    digest              text,
    pushed_at           timestamptz,
    first_pushed_at     timestamptz,
    deleted_at          timestamptz,
    -- GET requests naming the tag.
    last_pulled_at      timestamptz,
    pull_count          bigint NOT NULL DEFAULT 0,
    system_pull_count   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (registry, repository, tag)
);
CREATE INDEX tags_digest_idx ON regstat.tags (registry, repository, digest);

-- Newest delete of a digest in a repository (distribution's manifest and blob deletes look
-- alike: the tombstone applies to whichever the digest is).
CREATE TABLE regstat.digest_deletions (
    registry            text NOT NULL,
    repository          text NOT NULL,
    digest              text NOT NULL,
    deleted_at          timestamptz NOT NULL,
    PRIMARY KEY (registry, repository, digest)
);

-- Audit trail: every delete event.
CREATE TABLE regstat.deletions (
    event_id            text PRIMARY KEY,
    registry            text NOT NULL,
    repository          text NOT NULL,
    digest              text,
    tag                 text,
    deleted_at          timestamptz NOT NULL,
    actor               text,
    request_useragent   text,
    request_addr        text
);
CREATE INDEX deletions_at_idx ON regstat.deletions (deleted_at);

-- Manifest GETs per day. A request naming a tag has that tag, one by digest has ''.
-- The architecture comes from the manifest (view pulls_by_architecture).
CREATE TABLE regstat.pull_metrics (
    day                 date NOT NULL,
    registry            text NOT NULL,
    repository          text NOT NULL,
    tag                 text NOT NULL,
    digest              text NOT NULL,
    system              boolean NOT NULL,
    pulls               bigint NOT NULL,
    PRIMARY KEY (day, registry, repository, tag, digest, system)
);

-- Per repository: image pushes (manifest pushes) and image pulls (GETs of image manifests).
CREATE TABLE regstat.repository_stats (
    registry            text NOT NULL,
    repository          text NOT NULL,
    pushes              bigint NOT NULL DEFAULT 0,
    pulls               bigint NOT NULL DEFAULT 0,
    system_pulls        bigint NOT NULL DEFAULT 0,
    first_push_at       timestamptz,
    last_push_at        timestamptz,
    first_pull_at       timestamptz,
    last_pull_at        timestamptz,
    PRIMARY KEY (registry, repository)
);

-- Who pushed and pulled what: counted like repository_stats, per actor ('' when anonymous).
CREATE TABLE regstat.actors (
    registry            text NOT NULL,
    repository          text NOT NULL,
    actor               text NOT NULL,
    action              text NOT NULL CHECK (action IN ('push', 'pull')),
    events              bigint NOT NULL,
    first_at            timestamptz NOT NULL,
    last_at             timestamptz NOT NULL,
    PRIMARY KEY (registry, repository, actor, action)
);

-- Manifests present now: pushed after the newest delete of their digest.
CREATE VIEW regstat.live_manifests AS
SELECT m.*
FROM regstat.manifests m
LEFT JOIN regstat.digest_deletions d USING (registry, repository, digest)
WHERE m.last_pushed_at IS NOT NULL
  AND (d.deleted_at IS NULL OR m.last_pushed_at > d.deleted_at);

-- Blobs linked now.
CREATE VIEW regstat.live_blobs AS
SELECT b.*
FROM regstat.blobs b
LEFT JOIN regstat.digest_deletions d USING (registry, repository, digest)
WHERE b.last_pushed_at IS NOT NULL
  AND (d.deleted_at IS NULL OR b.last_pushed_at > d.deleted_at);

-- The platform of each manifest: its own (from its config), else as an index lists it.
CREATE VIEW regstat.manifest_platforms AS
SELECT m.registry, m.repository, m.digest,
       COALESCE(m.os, c.os) AS os,
       COALESCE(m.architecture, c.architecture) AS architecture,
       COALESCE(m.variant, c.variant) AS variant
FROM regstat.manifests m
LEFT JOIN LATERAL (
    SELECT r.os, r.architecture, r.variant
    FROM regstat.manifest_references r
    WHERE r.registry = m.registry AND r.repository = m.repository
      AND r.digest = m.digest AND r.role = 'manifest' AND r.architecture IS NOT NULL
    ORDER BY r.architecture, r.os, r.variant
    LIMIT 1
) c ON true;

-- Tags present now, with when they were last pulled in any way: by tag, by the digest of
-- their manifest, or through a child of their index.
CREATE VIEW regstat.live_tags AS
SELECT t.registry, t.repository, t.tag, t.digest, t.pushed_at, t.first_pushed_at,
       t.pull_count, t.system_pull_count,
       GREATEST(t.last_pulled_at, m.last_pulled_at, children.last_pulled_at) AS last_pulled_at
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

-- The audit trail with what each delete removed, judged from the state.
CREATE VIEW regstat.deletion_log AS
SELECT d.*,
       CASE
           WHEN d.tag IS NOT NULL THEN 'tag'
           WHEN EXISTS (SELECT 1 FROM regstat.manifests m
                        WHERE (m.registry, m.repository, m.digest) = (d.registry, d.repository, d.digest)
                          AND m.last_pushed_at IS NOT NULL) THEN 'manifest'
           WHEN EXISTS (SELECT 1 FROM regstat.blobs b
                        WHERE (b.registry, b.repository, b.digest) = (d.registry, d.repository, d.digest)) THEN 'blob'
           ELSE 'unknown'
       END AS kind
FROM regstat.deletions d;

-- Manifest GETs per day and architecture (index GETs have no architecture of their own).
CREATE VIEW regstat.pulls_by_architecture AS
SELECT p.day, p.registry, p.repository, p.tag, p.digest, p.system, p.pulls,
       mp.os, mp.architecture, mp.variant
FROM regstat.pull_metrics p
LEFT JOIN regstat.manifest_platforms mp USING (registry, repository, digest);
