-- Search (the console's /search and /api/v1/search): case-insensitive substrings of tags and
-- actors, answered by trigram indexes instead of a scan of every tag and actor (at 2 million
-- events 20,000 tags and 45,000 actor rows, about 40 ms each per search). pg_trgm ships with
-- PostgreSQL and is a trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX tags_tag_trgm_idx ON regstat.tags USING gin (lower(tag) gin_trgm_ops);
CREATE INDEX actors_actor_trgm_idx ON regstat.actors USING gin (lower(actor) gin_trgm_ops);
