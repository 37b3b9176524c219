-- regstat.event_ids loses its index on received_at (issue 16: write cost per event). It cost
-- an index entry, and now and then a page split, with every event: about 65 bytes of WAL per
-- event in regstat-bench's raw SQL run. Only the dedupe window's pruning read it, at most once
-- per maintenance interval; pruning now reads the table once instead, a range of pages per
-- statement (regstat_store::retention's forget_ids_before).
DROP INDEX regstat.event_ids_received_at_idx;
