//! Whole databases of their own, made and dropped by the test suites (a database per test)
//! and by the benchmark (a database per run), from an administrator's URL.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// `admin_url` with its database name replaced by `database` (query parameters kept).
pub fn url_of(admin_url: &str, database: &str) -> Result<String, String> {
    let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let Some((server, _)) = base.rsplit_once('/') else {
        return Err(format!("cannot find the database name in {admin_url}"));
    };
    if server.ends_with('/') {
        return Err(format!("{admin_url} names no database"));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok(format!("{server}/{database}{query}"))
}

/// Creates database `name` (an identifier the caller made: letters, digits, `_`). With
/// `log_statements`, the server logs every statement on it with its duration (profiling).
pub async fn create(admin_url: &str, name: &str, log_statements: bool) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    if log_statements {
        sqlx::query(AssertSqlSafe(format!(
            "ALTER DATABASE {name} SET log_min_duration_statement = 0"
        )))
        .execute(&mut admin)
        .await?;
    }
    admin.close().await
}

/// Drops database `name` if it exists, disconnecting whoever is still connected.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await
}

/// Vacuums the database `pool` is on and refreshes its planner statistics, as autovacuum
/// does in time after a bulk load: the statistics choose the plans, and the visibility map
/// lets index-only scans skip the heap. Needed where autovacuum is off or has not come round
/// yet (a benchmark reads right after seeding).
pub async fn vacuum_analyze(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM (ANALYZE)").execute(pool).await?;
    Ok(())
}

/// The server's version, as `SHOW server_version` says it.
pub async fn server_version(admin_url: &str) -> Result<String, sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    let version = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    admin.close().await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_in_the_url() {
        assert_eq!(
            url_of("postgres://postgres@127.0.0.1:5432/postgres", "b").as_deref(),
            Ok("postgres://postgres@127.0.0.1:5432/b")
        );
        assert_eq!(
            url_of("postgres://u:p@h/postgres?sslmode=disable", "b").as_deref(),
            Ok("postgres://u:p@h/b?sslmode=disable")
        );
        assert!(url_of("no-database-here", "b").is_err());
    }
}
