//! A migrated database per test, dropped when the test ends (also when it fails), for the
//! integration tests of every crate that reads or writes PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use regstat_shared::testkit::{self, START_POSTGRES};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

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
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{START_POSTGRES} ({admin_url}: {e})"));
        let name = testkit::unique_name("db").replace('-', "_");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = database_url(&admin_url, &name);
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
        sqlx::query_as("SELECT id, count(*) FROM regstat.events GROUP BY id ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("read the ledger")
    }

    /// Number of ledger rows.
    pub async fn ledger_len(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM regstat.events")
            .fetch_one(&self.pool)
            .await
            .expect("count the ledger")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: drop the database from a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&testkit::database_admin_url()).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `admin_url` with its database name replaced.
fn database_url(admin_url: &str, database: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("REGSTAT_TEST_DATABASE_URL must end in /<database>");
    let query = admin_url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{database}{query}")
}
