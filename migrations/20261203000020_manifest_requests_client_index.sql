-- A narrower index for finding a client's requests of a digest (issue 16: write cost per
-- event). The worker looks up the stored requests of each (registry, repository, client
-- address, User-Agent, digest) within a time span (regstat_store's model::pulls). The index
-- held all five plus the time, about 200 bytes per entry, and was the largest index written
-- per event: each manifest request inserts an entry, and the entries of a fleet's requests
-- for one digest split pages as they arrive. A digest and a client address already leave
-- only that client's few requests of the digest (other repositories or User-Agents from the
-- same address are filtered on the row), at about half the size.
DROP INDEX regstat.manifest_requests_client_idx;
CREATE INDEX manifest_requests_client_idx ON regstat.manifest_requests (digest, client_addr, at);
