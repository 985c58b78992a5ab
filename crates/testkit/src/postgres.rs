//! A fresh PostgreSQL database per test, on the server named by `IRONMESH_TEST_PG_URL`.

use sqlx::{Connection, Executor, PgConnection};

/// Whether the PostgreSQL variants should run. They run unless `IRONMESH_SKIP_PG=1`; a
/// missing URL without that switch is a test failure, not a silent skip.
pub fn enabled() -> bool {
    if std::env::var("IRONMESH_SKIP_PG").as_deref() == Ok("1") {
        eprintln!("PostgreSQL variant skipped (IRONMESH_SKIP_PG=1)");
        return false;
    }
    true
}

fn base_url() -> String {
    std::env::var("IRONMESH_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "IRONMESH_TEST_PG_URL is not set: run the tests through scripts/test (which starts \
             PostgreSQL), or set IRONMESH_SKIP_PG=1 to skip the PostgreSQL variants"
        )
    })
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let base = base_url();
    let name = format!("imtest_{}", crate::random_hex(8));
    let mut conn = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("CREATE DATABASE");
    let _ = conn.close().await;
    with_database(&base, &name)
}

/// `scheme://authority[/db][?query]` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (url, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = url[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(url.len());
    format!("{}/{name}{query}", &url[..authority_end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database() {
        assert_eq!(
            super::with_database("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "x"),
            "postgres://u@127.0.0.1:5/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h:5", "x"),
            "postgres://u@h:5/x"
        );
    }
}
