-- Indexes no query reads, dropped (issue 16: write cost per event). Each wrote an index entry,
-- and now and then a page split, with every row; regstat-bench's raw SQL run measured the WAL
-- each one cost per event of the realistic mix.
--
-- 1. The ledger's primary key (id, received_at), ~145 B of WAL per event. Postgres made the key
--    include the partition key, so it never made ids unique (regstat.event_ids does, and
--    remembers each id's received_at); no query of regstat's looks ledger rows up by id (the
--    console and reports read them by time and repository, through the two other indexes).
--    A lookup by hand reads one partition:
--      SELECT * FROM regstat.events
--      WHERE id = $1 AND received_at = (SELECT received_at FROM regstat.event_ids WHERE id = $1);
ALTER TABLE regstat.events DROP CONSTRAINT events_pkey;

-- 2. Blobs and manifests by (registry, digest), ~75 and ~35 B per event: every read by digest
--    uses the digest-only indexes of migration 20261202000009 (one registry is what nearly
--    every installation has, and a digest is in a handful of repositories); the keys
--    (registry, repository, digest) serve the rest.
DROP INDEX regstat.blobs_digest_idx;
DROP INDEX regstat.manifests_digest_idx;
