//! Ledger retention: the partitions of `regstat.events` and the dedupe window of
//! `regstat.event_ids` (docs/MODEL.md, "Ledger retention").
//!
//! - [`maintain`], run by the worker at start and every [`MAINTENANCE_INTERVAL`]: creates the
//!   current and the next `ledger.partitions_ahead` partitions, applies
//!   `ledger.retention_days`, forgets event ids past the dedupe window, and reports rows in the
//!   default partition.
//! - [`prune`]: `regstat ledger prune --older-than 90d [--dry-run]`.
//!
//! Ledger rows go a whole partition at a time (`DROP TABLE`: instant, no bloat); a partition
//! is dropped only when it ends before the cutoff. The derived state is never touched. Event
//! ids are forgotten only when older than `ledger.dedupe_days` *and* than every remaining
//! ledger row, and the dedupe horizon is raised first, so an event older than the horizon
//! whose id is unknown is refused by the database instead of being counted twice.
//!
//! Changes run on a connection of their own holding a session advisory lock, so concurrent
//! workers (and the CLI) never maintain at the same time; a dropped connection releases it.

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Days, Months, TimeZone, Utc};
use regstat_shared::config::{LedgerSettings, PartitionInterval};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use std::fmt;
use std::time::Duration;

/// How often a worker runs [`maintain`] (also once at start).
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// The default partition, created by the migration: rows outside every range partition.
pub const DEFAULT_PARTITION: &str = "events_default";

/// Session advisory lock held while maintaining ("regstat" and 1).
const LOCK_KEY: i64 = 0x7265_6773_7461_7401;

/// Longest wait for the ledger's lock when creating or dropping a partition: better to try
/// again at the next maintenance than to queue inserts behind a DDL statement.
const LOCK_TIMEOUT: &str = "5s";

/// Manifest requests deleted per statement (short transactions, little WAL per commit).
const FORGET_BATCH: i64 = 10_000;

/// Pages of `regstat.event_ids` read per statement when forgetting ids (2 MiB, about 40,000
/// ids): short transactions, as [`FORGET_BATCH`] gives the other deletes.
const FORGET_PAGES: i64 = 256;

/// One range partition of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Partition {
    /// Table name in schema `regstat`.
    pub name: String,
    /// First `received_at` it holds (UTC).
    pub start: DateTime<Utc>,
    /// First `received_at` it no longer holds.
    pub end: DateTime<Utc>,
    /// The planner's row estimate (-1: never analysed).
    pub estimated_rows: i64,
    /// Size on disk, indexes included.
    pub bytes: i64,
}

/// What the default partition holds: events received outside every range partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DefaultRows {
    /// Number of rows.
    pub rows: i64,
    /// Oldest `received_at` among them.
    pub oldest: Option<DateTime<Utc>>,
    /// Newest `received_at` among them.
    pub newest: Option<DateTime<Utc>>,
}

/// What a prune did, or would do with `dry_run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Ledger rows received before this go; `None` when the ledger is kept (only event ids
    /// past the dedupe window are forgotten).
    pub cutoff: Option<DateTime<Utc>>,
    /// Range partitions dropped: they end at or before the cutoff.
    pub partitions: Vec<Partition>,
    /// Rows of the default partition received before the cutoff, deleted.
    pub default_rows: i64,
    /// Event ids received before this are forgotten: the dedupe horizon.
    pub ids_before: DateTime<Utc>,
    /// Event ids forgotten.
    pub ids: i64,
}

/// What one [`maintain`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    /// Partitions created (rows of the default partition in their range were moved in).
    pub created: Vec<Partition>,
    /// Retention applied (`ledger.retention_days`, and the dedupe window).
    pub pruned: PruneReport,
    /// What is left in the default partition; anything here deserves a look.
    pub default: DefaultRows,
}

/// Maintains the ledger now: see [`maintain_at`]. `Ok(None)` when another worker or a
/// `regstat ledger prune` is at it.
pub async fn maintain(
    pool: &PgPool,
    settings: &LedgerSettings,
) -> anyhow::Result<Option<Maintenance>> {
    maintain_at(pool, settings, Utc::now()).await
}

/// Maintains the ledger as of `now`: creates the partition holding `now` and the next
/// `partitions_ahead`, drops partitions past `retention_days` (if not 0), forgets event ids
/// past the dedupe window, and reports the default partition (logged as a warning, and the
/// gauge `regstat_ledger_default_partition_rows`). `Ok(None)` when another process holds the
/// maintenance lock. Safe to run any number of times.
pub async fn maintain_at(
    pool: &PgPool,
    settings: &LedgerSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Maintenance>> {
    let Some(mut conn) = lock(pool).await? else {
        return Ok(None);
    };
    let interval = settings.partition_interval;
    let first = slot_start(interval, now);
    let mut until = first;
    for _ in 0..=settings.partitions_ahead {
        until = next_slot(interval, until);
    }
    let created = create_partitions_on(&mut conn, interval, first, until).await?;
    let cutoff = (settings.retention_days > 0)
        .then(|| now - chrono::Duration::days(i64::from(settings.retention_days)));
    let plan = plan(&mut conn, cutoff, settings.dedupe_days, now).await?;
    let pruned = execute(&mut conn, plan).await?;
    let default = default_rows(&mut conn)
        .await
        .context("reading the default partition")?;
    unlock(conn).await;

    for partition in &created {
        tracing::info!(partition = %partition.name, start = %partition.start, end = %partition.end, "ledger partition created");
    }
    for partition in &pruned.partitions {
        tracing::info!(partition = %partition.name, end = %partition.end, "ledger partition dropped (retention)");
    }
    if pruned.default_rows > 0 || pruned.ids > 0 {
        tracing::info!(default_rows = pruned.default_rows, event_ids = pruned.ids, ids_before = %pruned.ids_before, "ledger retention applied");
    }
    metrics::gauge!("regstat_ledger_default_partition_rows").set(default.rows as f64);
    if default.rows > 0 {
        tracing::warn!(
            rows = default.rows,
            oldest = ?default.oldest,
            newest = ?default.newest,
            "events outside every ledger partition are in regstat.events_default (clock skew, or \
             replays older than the retention); they move into a partition when one covering \
             them is created, and retention deletes them like the rest"
        );
    }
    Ok(Some(Maintenance {
        created,
        pruned,
        default,
    }))
}

/// `regstat ledger prune --older-than <older_than_days>d [--dry-run]`: see [`prune_at`].
pub async fn prune(
    pool: &PgPool,
    settings: &LedgerSettings,
    older_than_days: u32,
    dry_run: bool,
) -> anyhow::Result<PruneReport> {
    prune_at(pool, settings, older_than_days, dry_run, Utc::now()).await
}

/// Drops the ledger partitions that end `older_than_days` days before `now` or earlier,
/// deletes default-partition rows received before then, and forgets event ids past the dedupe
/// window (`settings.dedupe_days`, and never while a ledger row of theirs remains). With
/// `dry_run`, only says what would go. The derived state is not touched. Fails if another
/// process is maintaining the ledger.
pub async fn prune_at(
    pool: &PgPool,
    settings: &LedgerSettings,
    older_than_days: u32,
    dry_run: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<PruneReport> {
    if older_than_days == 0 {
        bail!("--older-than must be at least 1 day");
    }
    let cutoff = now - chrono::Duration::days(i64::from(older_than_days));
    if dry_run {
        let mut conn = pool.acquire().await.context("connecting to the database")?;
        let plan = plan(&mut conn, Some(cutoff), settings.dedupe_days, now).await?;
        return Ok(plan.report(true));
    }
    let Some(mut conn) = lock(pool).await? else {
        bail!("another worker or `regstat ledger prune` is maintaining the ledger; try again");
    };
    let plan = plan(&mut conn, Some(cutoff), settings.dedupe_days, now).await?;
    let report = execute(&mut conn, plan).await?;
    unlock(conn).await;
    Ok(report)
}

/// Creates the partitions of `interval` covering `[from, to)` that do not exist yet (parts of
/// a slot another partition covers are left out, so changing `ledger.partition_interval`
/// never overlaps). Rows of the default partition in a new range are moved into it.
pub async fn create_partitions(
    pool: &PgPool,
    interval: PartitionInterval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<Partition>> {
    let Some(mut conn) = lock(pool).await? else {
        bail!("another worker or `regstat ledger prune` is maintaining the ledger; try again");
    };
    let created = create_partitions_on(&mut conn, interval, from, to).await?;
    unlock(conn).await;
    Ok(created)
}

/// The ledger's range partitions, oldest first. Unbounded ends (`MINVALUE`, `MAXVALUE`; regstat
/// creates none) read as the years 1 and 9999.
pub async fn partitions(db: &mut PgConnection) -> Result<Vec<Partition>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name,
                GREATEST(range_start, '0001-01-01T00:00:00Z') AS start,
                LEAST(range_end, '9999-12-31T00:00:00Z') AS \"end\",
                estimated_rows, bytes
         FROM regstat.event_partitions
         WHERE NOT is_default
         ORDER BY range_start, name",
    )
    .fetch_all(db)
    .await
}

/// What the default partition holds.
pub async fn default_rows(db: &mut PgConnection) -> Result<DefaultRows, sqlx::Error> {
    let (rows, oldest, newest) = sqlx::query_as(
        "SELECT count(*), min(received_at), max(received_at) FROM regstat.events_default",
    )
    .fetch_one(db)
    .await?;
    Ok(DefaultRows {
        rows,
        oldest,
        newest,
    })
}

/// When event ids received before it have been forgotten (the dedupe horizon); `None` while
/// none has. `regstat dlq replay` should not replay a dead letter received before it: its
/// event would be refused (docs/MODEL.md, "Ledger retention").
pub async fn dedupe_horizon(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CASE WHEN isfinite(forgotten_before) THEN forgotten_before END
         FROM regstat.dedupe_horizon",
    )
    .fetch_one(pool)
    .await
}

/// Parses an age given as days, `90d` (or `90`), for `--older-than`.
pub fn parse_days(text: &str) -> Result<u32, String> {
    let digits = text.strip_suffix('d').unwrap_or(text);
    match digits.parse::<u32>() {
        Ok(days) if days > 0 => Ok(days),
        _ => Err(format!(
            "{text:?} is not a number of days such as 90d (at least 1)"
        )),
    }
}

/// The start of the `interval` slot holding `at` (UTC midnight, or the first of its month).
pub fn slot_start(interval: PartitionInterval, at: DateTime<Utc>) -> DateTime<Utc> {
    let day = at.date_naive();
    let first = match interval {
        PartitionInterval::Day => day,
        PartitionInterval::Month => day.with_day(1).unwrap_or(day),
    };
    Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN))
}

/// The start of the slot after the one starting at `start`.
pub fn next_slot(interval: PartitionInterval, start: DateTime<Utc>) -> DateTime<Utc> {
    let next = match interval {
        PartitionInterval::Day => start.checked_add_days(Days::new(1)),
        PartitionInterval::Month => start.checked_add_months(Months::new(1)),
    };
    next.unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The parts of `[start, end)` no range in `taken` covers, in order.
pub fn gaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    taken: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut taken: Vec<_> = taken
        .iter()
        .filter(|(s, e)| *s < end && *e > start)
        .copied()
        .collect();
    taken.sort();
    let mut free = Vec::new();
    let mut cursor = start;
    for (s, e) in taken {
        if s > cursor {
            free.push((cursor, s));
        }
        cursor = cursor.max(e);
    }
    if cursor < end {
        free.push((cursor, end));
    }
    free
}

/// A partition's name: `events_p` and its start, `YYYYMMDD` (with `_HHMMSS` if not midnight).
fn partition_name(start: DateTime<Utc>) -> String {
    if start.time() == chrono::NaiveTime::MIN {
        format!("events_p{}", start.format("%Y%m%d"))
    } else {
        format!("events_p{}", start.format("%Y%m%d_%H%M%S"))
    }
}

/// A table of schema `regstat` as an SQL identifier, quoted: a partition an operator attached
/// by hand may have any name (capitals, spaces, quotes), and DDL takes no parameters.
fn qualified(name: &str) -> String {
    format!("regstat.\"{}\"", name.replace('"', "\"\""))
}

/// A timestamp as an SQL literal (for DDL, which takes no parameters).
fn literal(at: DateTime<Utc>) -> String {
    format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f+00"))
}

/// A connection of its own holding the maintenance lock, or `None` if another holds it.
async fn lock(pool: &PgPool) -> anyhow::Result<Option<PgConnection>> {
    // Detached: if this task is cancelled or fails, dropping the connection closes it and the
    // server releases the lock (a pooled connection would keep it).
    let mut conn = pool
        .acquire()
        .await
        .context("connecting to the database")?
        .detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .context("taking the ledger maintenance lock")?;
    if !locked {
        let _ = conn.close().await;
        return Ok(None);
    }
    sqlx::query(AssertSqlSafe(format!(
        "SET lock_timeout = '{LOCK_TIMEOUT}'"
    )))
    .execute(&mut conn)
    .await
    .context("setting lock_timeout")?;
    Ok(Some(conn))
}

/// Releases the lock by closing the connection.
async fn unlock(conn: PgConnection) {
    let _ = conn.close().await;
}

async fn create_partitions_on(
    conn: &mut PgConnection,
    interval: PartitionInterval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<Partition>> {
    let existing = partitions(conn)
        .await
        .context("listing the ledger's partitions")?;
    let mut taken: Vec<_> = existing.iter().map(|p| (p.start, p.end)).collect();
    let mut created = Vec::new();
    let mut slot = slot_start(interval, from);
    while slot < to {
        let next = next_slot(interval, slot);
        for (start, end) in gaps(slot, next, &taken) {
            let partition = create_partition(conn, start, end)
                .await
                .with_context(|| format!("creating the ledger partition from {start} to {end}"))?;
            taken.push((start, end));
            created.push(partition);
        }
        slot = next;
    }
    Ok(created)
}

/// Creates one partition, moving in the default partition's rows of its range (a partition
/// cannot be created over rows the default partition holds).
async fn create_partition(
    conn: &mut PgConnection,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Partition, sqlx::Error> {
    let name = partition_name(start);
    let mut tx = conn.begin().await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {}
             (LIKE regstat.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        qualified(&name)
    )))
    .execute(&mut *tx)
    .await?;
    let moved = sqlx::query(AssertSqlSafe(format!(
        "WITH moved AS (
             DELETE FROM regstat.{DEFAULT_PARTITION}
             WHERE received_at >= $1 AND received_at < $2
             RETURNING *)
         INSERT INTO {} SELECT * FROM moved",
        qualified(&name)
    )))
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(AssertSqlSafe(format!(
        "ALTER TABLE regstat.events ATTACH PARTITION {}
             FOR VALUES FROM ({}) TO ({})",
        qualified(&name),
        literal(start),
        literal(end)
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if moved > 0 {
        tracing::info!(partition = %name, rows = moved, "ledger rows moved from the default partition");
    }
    Ok(Partition {
        name,
        start,
        end,
        estimated_rows: i64::try_from(moved).unwrap_or(i64::MAX),
        bytes: 0,
    })
}

/// What a prune will remove.
struct Plan {
    cutoff: Option<DateTime<Utc>>,
    partitions: Vec<Partition>,
    default_rows: i64,
    ids_before: DateTime<Utc>,
    ids: i64,
}

impl Plan {
    fn report(self, dry_run: bool) -> PruneReport {
        PruneReport {
            dry_run,
            cutoff: self.cutoff,
            partitions: self.partitions,
            default_rows: self.default_rows,
            ids_before: self.ids_before,
            ids: self.ids,
        }
    }
}

/// Decides what goes: partitions ending at or before `cutoff`, default-partition rows
/// received before it, and event ids received before both `now - dedupe_days` and the oldest
/// ledger row that stays (so every ledger row keeps its id, and no id is forgotten within the
/// dedupe window).
async fn plan(
    conn: &mut PgConnection,
    cutoff: Option<DateTime<Utc>>,
    dedupe_days: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<Plan> {
    let all = partitions(conn)
        .await
        .context("listing the ledger's partitions")?;
    let (dropped, kept): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|p| cutoff.is_some_and(|cutoff| p.end <= cutoff));
    let (default_rows, default_oldest_kept): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE received_at < $1),
                min(received_at) FILTER (WHERE $1 IS NULL OR received_at >= $1)
         FROM regstat.events_default",
    )
    .bind(cutoff)
    .fetch_one(&mut *conn)
    .await
    .context("reading the default partition")?;
    let window = now - chrono::Duration::days(i64::from(dedupe_days));
    let ids_before = kept
        .iter()
        .map(|p| p.start)
        .chain(default_oldest_kept)
        .fold(window, DateTime::min);
    let ids: i64 =
        sqlx::query_scalar("SELECT count(*) FROM regstat.event_ids WHERE received_at < $1")
            .bind(ids_before)
            .fetch_one(&mut *conn)
            .await
            .context("counting the event ids to forget")?;
    Ok(Plan {
        cutoff,
        partitions: dropped,
        default_rows,
        ids_before,
        ids,
    })
}

/// Carries out a plan on the locked connection. Each step commits on its own, in an order
/// that keeps the invariants at every point: ledger rows go first (an id outliving its row is
/// harmless), the horizon is raised before any id is forgotten.
async fn execute(conn: &mut PgConnection, plan: Plan) -> anyhow::Result<PruneReport> {
    for partition in &plan.partitions {
        sqlx::query(AssertSqlSafe(format!(
            "DROP TABLE {}",
            qualified(&partition.name)
        )))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("dropping the ledger partition {}", partition.name))?;
    }
    let mut default_rows = 0;
    if let Some(cutoff) = plan.cutoff {
        let deleted = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM regstat.{DEFAULT_PARTITION} WHERE received_at < $1"
        )))
        .bind(cutoff)
        .execute(&mut *conn)
        .await
        .context("deleting old rows of the default partition")?;
        default_rows = i64::try_from(deleted.rows_affected()).unwrap_or(i64::MAX);
    }
    sqlx::query(
        "UPDATE regstat.dedupe_horizon
         SET forgotten_before = GREATEST(forgotten_before, $1)",
    )
    .bind(plan.ids_before)
    .execute(&mut *conn)
    .await
    .context("raising the dedupe horizon")?;
    let ids = forget_ids_before(conn, plan.ids_before)
        .await
        .context("forgetting event ids past the dedupe window")?;
    // The pairing state of pulls goes with the ids: a request older than the horizon can no
    // longer pair with one delivered now (docs/MODEL.md, "Pulls and version checks").
    delete_before(
        conn,
        "DELETE FROM regstat.manifest_requests
         WHERE event_id IN (SELECT event_id FROM regstat.manifest_requests
                            WHERE at < $1 LIMIT $2)",
        plan.ids_before,
    )
    .await
    .context("forgetting manifest requests past the dedupe window")?;
    Ok(PruneReport {
        dry_run: false,
        cutoff: plan.cutoff,
        partitions: plan.partitions,
        default_rows,
        ids_before: plan.ids_before,
        ids,
    })
}

/// Deletes the ids of `regstat.event_ids` received before `before`, reading the table once,
/// [`FORGET_PAGES`] pages per statement (a TID range scan). The table has no index on
/// `received_at` (migration 23: it cost about 65 B of WAL per event, and this runs at most
/// once per maintenance interval); ids written meanwhile are newer, wherever they go.
async fn forget_ids_before(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let pages: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('regstat.event_ids') / current_setting('block_size')::bigint",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (mut total, mut first) = (0, 0);
    while first < pages {
        let deleted = sqlx::query(
            "DELETE FROM regstat.event_ids
             WHERE ctid >= format('(%s,0)', $1::bigint)::tid
               AND ctid < format('(%s,0)', $2::bigint)::tid
               AND received_at < $3",
        )
        .bind(first)
        .bind(first + FORGET_PAGES)
        .bind(before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        total += i64::try_from(deleted).unwrap_or(i64::MAX);
        first += FORGET_PAGES;
    }
    Ok(total)
}

/// Runs `delete` (bound to `before` and [`FORGET_BATCH`]) until it deletes less than a batch,
/// so no statement holds many row locks or much WAL at once. Returns the rows deleted.
async fn delete_before(
    conn: &mut PgConnection,
    delete: &'static str,
    before: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(delete)
            .bind(before)
            .bind(FORGET_BATCH)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        total += i64::try_from(deleted).unwrap_or(i64::MAX);
        if deleted < FORGET_BATCH as u64 {
            return Ok(total);
        }
    }
}

impl fmt::Display for PruneReport {
    /// What was (or would be) removed, for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (drop, delete, forget) = if self.dry_run {
            ("would drop", "would delete", "would forget")
        } else {
            ("dropped", "deleted", "forgot")
        };
        let time = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        match self.cutoff {
            Some(cutoff) => {
                writeln!(
                    f,
                    "{drop} {} ledger partitions (events received before {}):",
                    self.partitions.len(),
                    time(cutoff)
                )?;
                for p in &self.partitions {
                    writeln!(
                        f,
                        "  regstat.{:<24} {} .. {}  ~{} rows  {} MiB",
                        p.name,
                        p.start.format("%Y-%m-%d"),
                        p.end.format("%Y-%m-%d"),
                        p.estimated_rows.max(0),
                        p.bytes / (1024 * 1024)
                    )?;
                }
                writeln!(
                    f,
                    "{delete} {} rows of regstat.{DEFAULT_PARTITION}",
                    self.default_rows
                )?;
            }
            None => writeln!(f, "ledger kept (no retention)")?,
        }
        writeln!(
            f,
            "{forget} {} event ids received before {} (the dedupe horizon)",
            self.ids,
            time(self.ids_before)
        )?;
        writeln!(
            f,
            "derived state (tags, manifests, blobs, counts) untouched"
        )?;
        if self.dry_run {
            writeln!(f, "dry run: nothing changed")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn slots_are_utc_days_and_months() {
        let now = at("2026-12-31T23:59:59Z");
        assert_eq!(
            slot_start(PartitionInterval::Month, now),
            at("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            next_slot(PartitionInterval::Month, at("2026-12-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            slot_start(PartitionInterval::Day, now),
            at("2026-12-31T00:00:00Z")
        );
        assert_eq!(
            next_slot(PartitionInterval::Day, at("2026-12-31T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            next_slot(PartitionInterval::Month, at("2027-01-01T00:00:00Z")),
            at("2027-02-01T00:00:00Z")
        );
    }

    #[test]
    fn gaps_leave_out_what_is_taken() {
        let (s, e) = (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
        assert_eq!(gaps(s, e, &[]), vec![(s, e)]);
        // Daily partitions up to the 10th (an earlier `day` setting): the month starts after.
        let tenth = at("2026-12-10T00:00:00Z");
        let taken = [(at("2026-12-09T00:00:00Z"), tenth)];
        assert_eq!(
            gaps(s, e, &taken),
            vec![(s, at("2026-12-09T00:00:00Z")), (tenth, e)]
        );
        assert_eq!(gaps(s, e, &[(at("2026-11-01T00:00:00Z"), e)]), vec![]);
        assert_eq!(
            gaps(s, e, &[(at("2026-11-01T00:00:00Z"), tenth)]),
            vec![(tenth, e)]
        );
    }

    #[test]
    fn names_and_literals() {
        assert_eq!(
            partition_name(at("2026-12-01T00:00:00Z")),
            "events_p20261201"
        );
        assert_eq!(
            partition_name(at("2026-12-01T06:30:00Z")),
            "events_p20261201_063000"
        );
        assert_eq!(
            literal(at("2026-12-01T00:00:00Z")),
            "'2026-12-01 00:00:00.000000+00'"
        );
    }

    #[test]
    fn ages_are_days() {
        assert_eq!(parse_days("90d"), Ok(90));
        assert_eq!(parse_days("7"), Ok(7));
        assert!(parse_days("0d").is_err());
        assert!(parse_days("3m").is_err());
        assert!(parse_days("-1d").is_err());
    }
}
