//! Schema migrations: one ordered list, the same SQL for SQLite and PostgreSQL.
//! Append new steps; never edit an applied one.

use super::Store;

const STEPS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    email_verified BIGINT NOT NULL DEFAULT 0,
    realname TEXT,
    password_hash TEXT NOT NULL,
    site_rights BIGINT NOT NULL DEFAULT 0,
    reset_next_login BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    password_changed_ms BIGINT NOT NULL
);
CREATE TABLE device_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mtype BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    flags BIGINT NOT NULL DEFAULT 0,
    consent BIGINT NOT NULL DEFAULT 0,
    creator_id TEXT,
    creator_name TEXT,
    created_ms BIGINT NOT NULL
);
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rights BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    os_desc TEXT NOT NULL DEFAULT '',
    icon BIGINT NOT NULL DEFAULT 1,
    agent_id BIGINT NOT NULL DEFAULT 0,
    agent_version BIGINT NOT NULL DEFAULT 0,
    agent_caps BIGINT NOT NULL DEFAULT 0,
    platform_type BIGINT NOT NULL DEFAULT 1,
    core_info TEXT,
    net_info TEXT,
    sys_info TEXT,
    sessions TEXT,
    first_connect_ms BIGINT NOT NULL,
    last_connect_ms BIGINT NOT NULL,
    last_addr TEXT NOT NULL DEFAULT ''
);
CREATE INDEX devices_group ON devices(group_id);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    etype TEXT NOT NULL,
    action TEXT NOT NULL,
    user_id TEXT,
    group_id TEXT,
    node_id TEXT,
    msg TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_time ON events(time_ms);
CREATE INDEX events_node ON events(node_id, time_ms);
CREATE INDEX events_group ON events(group_id, time_ms);
CREATE INDEX events_user ON events(user_id, time_ms);
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE login_tokens (
    token_user TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX login_tokens_user ON login_tokens(user_id);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE gateways (
    device_id TEXT PRIMARY KEY,
    group_id TEXT REFERENCES device_groups(id) ON DELETE SET NULL,
    approved BIGINT NOT NULL DEFAULT 0,
    generation TEXT NOT NULL,
    mode BIGINT,
    device_info TEXT,
    gateways TEXT,
    sys_info TEXT,
    wanted_auth_modes TEXT,
    remote_addr TEXT NOT NULL DEFAULT '',
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX gateways_group ON gateways(group_id);
CREATE TABLE portal_sessions (
    token TEXT PRIMARY KEY,
    gw_id TEXT NOT NULL,
    client_mac TEXT NOT NULL DEFAULT '',
    client_ip TEXT NOT NULL DEFAULT '',
    state BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE events ADD COLUMN seq BIGINT;
ALTER TABLE events ADD COLUMN remote_addr TEXT;
ALTER TABLE events ADD COLUMN user_agent TEXT;
ALTER TABLE events ADD COLUMN outcome TEXT NOT NULL DEFAULT 'success';
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
ALTER TABLE events ADD COLUMN targets TEXT;
CREATE UNIQUE INDEX events_seq ON events(seq);
CREATE INDEX events_action ON events(action, time_ms)
"#,
    ),
    (
        4,
        r#"
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    node_id TEXT,
    group_id TEXT,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    protocol BIGINT NOT NULL,
    format TEXT NOT NULL,
    file TEXT NOT NULL,
    size BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT NOT NULL,
    event_id TEXT
);
CREATE INDEX recordings_time ON recordings(started_ms);
CREATE INDEX recordings_node ON recordings(node_id, started_ms)
"#,
    ),
    (
        5,
        r#"
CREATE TABLE totp (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    last_step BIGINT NOT NULL
);
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL
);
CREATE INDEX passkeys_user ON passkeys(user_id);
CREATE TABLE oidc_identities (
    identity TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE
)
"#,
    ),
    (
        6,
        r#"
CREATE TABLE user_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);
CREATE TABLE user_group_members (
    ugrp_id TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (ugrp_id, user_id)
);
CREATE INDEX user_group_members_user ON user_group_members(user_id);
CREATE TABLE group_user_groups (
    group_id TEXT NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
    ugrp_id TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    rights BIGINT NOT NULL,
    PRIMARY KEY (group_id, ugrp_id)
);
CREATE INDEX group_user_groups_ugrp ON group_user_groups(ugrp_id)
"#,
    ),
    (
        7,
        r#"
ALTER TABLE devices ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN consent BIGINT NOT NULL DEFAULT 0;
CREATE TABLE device_members (
    node_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rights BIGINT NOT NULL,
    PRIMARY KEY (node_id, user_id)
);
CREATE INDEX device_members_user ON device_members(user_id)
"#,
    ),
    (
        8,
        r#"
CREATE TABLE power_history (
    node_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    time_ms BIGINT NOT NULL,
    power BIGINT NOT NULL
);
CREATE INDEX power_history_node_time ON power_history(node_id, time_ms)
"#,
    ),
];

pub async fn run(store: &Store) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&store.pool)
    .await?;
    for (version, sql) in STEPS {
        let mut tx = store.pool.begin().await?;
        let applied: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.is_some() {
            continue;
        }
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        // Two servers starting together on one PostgreSQL: the loser's insert fails on the
        // primary key and its transaction rolls back; it then finds the step applied.
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(*version)
            .bind(super::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
