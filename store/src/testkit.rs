//! A migrated database per test, dropped when the test ends (also when it fails), for the
//! integration tests of every crate that reads or writes PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::databases;
use regstat_shared::testkit::{self, START_POSTGRES};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A database of its own, migrated, dropped when the test ends (also on failure).
pub struct TestDb {
    /// Pool on the test database.
    pub pool: PgPool,
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDb {
    /// Creates and migrates the database; fails (never skips) when PostgreSQL is not reachable.
    pub async fn new() -> Self {
        let admin_url = testkit::database_admin_url();
        let name = testkit::unique_name("db").replace('-', "_");
        databases::create(&admin_url, &name, false)
            .await
            .unwrap_or_else(|e| panic!("{START_POSTGRES} ({admin_url}: {e})"));
        let url = databases::url_of(&admin_url, &name)
            .expect("REGSTAT_TEST_DATABASE_URL must end in /<database>");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to the test database");
        crate::db::migrate(&pool).await.expect("migrate");
        Self { pool, url, name }
    }

    /// Ledger rows per event id.
    pub async fn ledger_counts(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT regstat.event_id(e) AS id, count(*) FROM regstat.events e GROUP BY 1 ORDER BY 1",
        )
            .fetch_all(&self.pool)
            .await
            .expect("read the ledger")
    }

    /// Number of ledger rows.
    pub async fn ledger_len(&self) -> i64 {
        crate::measure::events(&self.pool, crate::measure::Path::All)
            .await
            .expect("count the ledger")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        testkit::cleanup_on_drop(async move {
            let _ = databases::drop_database(&testkit::database_admin_url(), &name).await;
        });
    }
}
