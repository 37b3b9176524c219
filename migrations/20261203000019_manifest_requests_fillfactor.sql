-- Room on each page of regstat.manifest_requests for the update that settles a request (issue
-- 16: write cost per event). A request row is inserted, then updated once when its pull or
-- version check is decided (is_check, credited_tag: no index covers them). With full pages
-- (fillfactor 100) the new version went to another page, so the update wrote an entry in each
-- of the table's three indexes: regstat-bench's end-to-end run saw 93 of 1,607 updates stay
-- on their page (HOT). 10% free space keeps them there. Pages written from now on get it.
ALTER TABLE regstat.manifest_requests SET (fillfactor = 90);
