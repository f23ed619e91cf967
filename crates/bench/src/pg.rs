//! The benchmarks' own PostgreSQL databases: created fresh, dropped when a run passes, and
//! never one whose name the benchmarks did not give it.

/// Databases the benchmarks create and drop carry one of these prefixes; no other name is ever
/// dropped, whatever a flag says.
pub const OWN_DATABASE_PREFIXES: [&str; 3] = ["emag_bench_", "emag_fleet_", "emag_kill_"];

/// Refuses a database name the benchmarks did not make their own.
pub fn check_own_database(name: &str) -> anyhow::Result<()> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain || !OWN_DATABASE_PREFIXES.iter().any(|p| name.starts_with(p)) {
        anyhow::bail!(
            "refusing to drop and create the database {name:?}: benchmark databases are named \
             {} (lowercase letters, digits, _)",
            OWN_DATABASE_PREFIXES
                .iter()
                .map(|p| format!("{p}*"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Drops (if it exists) and creates a benchmark database; returns its URL.
pub async fn fresh_postgres(admin: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    check_own_database(name)?;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let _closed = conn.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    Ok(format!("{base}/{name}"))
}

/// Drops a benchmark database (best effort: a leftover is named and harmless).
pub async fn drop_database(admin: &str, name: &str) {
    use sqlx::{Connection, Executor};
    if check_own_database(name).is_err() {
        return;
    }
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        if let Err(e) = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
        {
            tracing::warn!(database = name, error = %e, "cannot drop a benchmark database");
        }
        let _closed = conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_benchmarks_own_names_are_dropped() {
        assert!(check_own_database("emag_kill_42").is_ok());
        assert!(check_own_database("emag_fleet_1").is_ok());
        assert!(check_own_database("test").is_err());
        assert!(check_own_database("emag_kill_x; DROP").is_err());
    }
}
