-- undetermined-blobs, cached per repository like orphaned-blobs (migration
-- 20261202000009_repository_caches.sql explains the scheme). Migration 10 left it uncached as
-- rarely read; the console's candidates page reads it on every view, and computing it read
-- every manifest (about 110 ms at 2 million events, with nothing to list). A manifest's
-- content and liveness change in the writes that mark its repository stale, as a blob's do.

ALTER VIEW regstat.undetermined_blobs RENAME TO undetermined_blobs_live;

CREATE TABLE regstat.undetermined_blob_rows (
    registry           text NOT NULL,
    repository         text NOT NULL,
    digest             text NOT NULL,
    size               bigint,
    last_pushed_at     timestamptz,
    unknown_manifests  bigint,
    reason             text,
    PRIMARY KEY (registry, repository, digest)
);
INSERT INTO regstat.undetermined_blob_rows SELECT * FROM regstat.undetermined_blobs_live;

-- The same rows as the model's: cached for the repositories that are not stale, computed for
-- the stale ones.
CREATE VIEW regstat.undetermined_blobs AS
SELECT c.registry, c.repository, c.digest, c.size, c.last_pushed_at, c.unknown_manifests,
       c.reason
FROM regstat.undetermined_blob_rows c
WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                  WHERE s.registry = c.registry AND s.repository = c.repository)
UNION ALL
SELECT l.registry, l.repository, l.digest, l.size, l.last_pushed_at, l.unknown_manifests,
       l.reason
FROM regstat.stale_repositories s
CROSS JOIN LATERAL (
    SELECT * FROM regstat.undetermined_blobs_live u
    WHERE u.registry = s.registry AND u.repository = s.repository
    OFFSET 0 -- per stale repository
) l;
