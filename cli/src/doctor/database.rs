//! `postgres`, `migrations`, `partitions`: PostgreSQL answers, the migrations this binary
//! knows are exactly those applied, and range partitions of the ledger hold now and the next
//! slot.

use super::{Report, STEP_TIMEOUT, bounded, chain, millis};
use crate::admin;
use chrono::Utc;
use regstat_shared::config::Settings;
use regstat_store::{db, retention};
use secrecy::ExposeSecret;
use sqlx::PgConnection;
use sqlx::migrate::{Migrate, MigrateError};
use std::collections::{BTreeMap, BTreeSet};

/// `postgres`, then `migrations`, then `partitions`.
pub(super) async fn check(report: &mut Report, settings: &Settings) {
    let mut database = settings.database.clone();
    database.acquire_timeout_ms = database.acquire_timeout_ms.min(millis(STEP_TIMEOUT));
    let url = admin::redact_url(settings.database.url.expose_secret());
    let mut db = match admin::connect_database(&database).await {
        Ok(db) => db,
        Err(error) => {
            report.fail(
                "postgres",
                format!(
                    "{}: is PostgreSQL running, and is database.url right?",
                    chain(&error)
                ),
            );
            return;
        }
    };
    report.ok("postgres", format!("connected to {url}"));
    if migrations(report, &mut db).await {
        partitions(report, &mut db, settings).await;
    }
    let _ = bounded(sqlx::Connection::close(db)).await;
}

/// Whether the database has exactly the migrations this binary knows, all applied cleanly.
async fn migrations(report: &mut Report, db: &mut PgConnection) -> bool {
    const NAME: &str = "migrations";
    let table = &db::MIGRATOR.table_name;
    let applied = match bounded(db.list_applied_migrations(table)).await {
        Ok(Ok(applied)) => applied,
        Ok(Err(MigrateError::Execute(sqlx::Error::Database(error))))
            if error.code().as_deref() == Some("42P01") =>
        {
            // No migrations table: nothing applied yet.
            Vec::new()
        }
        Ok(Err(error)) => {
            return report.fail(NAME, format!("cannot read {table}: {}", chain(&error)));
        }
        Err(elapsed) => return report.fail(NAME, format!("cannot read {table}: {elapsed}")),
    };
    let known: BTreeMap<i64, &sqlx::migrate::Migration> = db::MIGRATOR
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .map(|migration| (migration.version, migration))
        .collect();
    let applied_versions: BTreeSet<i64> = applied.iter().map(|m| m.version).collect();
    let describe = |version: &i64| match known.get(version) {
        Some(migration) => format!("{version} {}", migration.description),
        None => version.to_string(),
    };
    let pending: Vec<String> = known
        .keys()
        .filter(|version| !applied_versions.contains(version))
        .map(describe)
        .collect();
    let unknown: Vec<String> = applied_versions
        .iter()
        .filter(|version| !known.contains_key(version))
        .map(describe)
        .collect();
    let changed: Vec<String> = applied
        .iter()
        .filter(|applied| {
            known
                .get(&applied.version)
                .is_some_and(|known| known.checksum != applied.checksum)
        })
        .map(|applied| describe(&applied.version))
        .collect();
    let dirty = match bounded(db.dirty_version(table)).await {
        Ok(Ok(dirty)) => dirty,
        _ => None,
    };
    if let Some(version) = dirty {
        return report.fail(
            NAME,
            format!(
                "migration {} failed part-way and is marked dirty: see the database's log, \
                 repair by hand, then run `regstat migrate`",
                describe(&version)
            ),
        );
    }
    if !unknown.is_empty() {
        return report.fail(
            NAME,
            format!(
                "the database has migrations this regstat does not know ({}): a newer regstat \
                 migrated it; run that version (this one's `regstat migrate` refuses)",
                unknown.join(", ")
            ),
        );
    }
    if !changed.is_empty() {
        return report.fail(
            NAME,
            format!(
                "applied migrations differ from this regstat's ({}): applied migrations are \
                 never edited; run the regstat that applied them",
                changed.join(", ")
            ),
        );
    }
    if !pending.is_empty() {
        return report.fail(
            NAME,
            format!(
                "{} of {} pending ({}): run `regstat migrate`",
                pending.len(),
                known.len(),
                pending.join(", ")
            ),
        );
    }
    let latest = known.keys().next_back().map(describe).unwrap_or_default();
    report.ok(
        NAME,
        format!("all {} applied (latest {latest})", known.len()),
    )
}

/// Whether range partitions of the ledger hold now and the next slot.
async fn partitions(report: &mut Report, db: &mut PgConnection, settings: &Settings) -> bool {
    const NAME: &str = "partitions";
    let partitions = match bounded(retention::partitions(db)).await {
        Ok(Ok(partitions)) => partitions,
        Ok(Err(error)) => {
            return report.fail(
                NAME,
                format!("cannot list the ledger's partitions: {}", chain(&error)),
            );
        }
        Err(elapsed) => {
            return report.fail(
                NAME,
                format!("cannot list the ledger's partitions: {elapsed}"),
            );
        }
    };
    let interval = settings.ledger.partition_interval;
    let now = Utc::now();
    let next = retention::next_slot(interval, retention::slot_start(interval, now));
    let holding = |at| partitions.iter().find(|p| p.start <= at && at < p.end);
    let missing: Vec<String> = [("now", now), ("the next slot", next)]
        .into_iter()
        .filter(|(_, at)| holding(*at).is_none())
        .map(|(what, at)| format!("{what} ({})", at.format("%Y-%m-%d %H:%M UTC")))
        .collect();
    if !missing.is_empty() {
        return report.fail(
            NAME,
            format!(
                "no range partition of regstat.events holds {}: events go to the default \
                 partition; a worker creates partitions at start and hourly: is one running?",
                missing.join(" or ")
            ),
        );
    }
    let until = partitions
        .iter()
        .map(|p| p.end)
        .max()
        .map(|end| end.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    report.ok(
        NAME,
        format!(
            "{} range partitions; now and the next slot are held (until {until})",
            partitions.len()
        ),
    )
}
