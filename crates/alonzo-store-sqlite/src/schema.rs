//! The schema and its migrations, applied in order and tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: functions and their versions.
    "CREATE TABLE functions (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        tags        TEXT NOT NULL DEFAULT '{}'
     );
     CREATE TABLE function_versions (
        name                TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        version             TEXT NOT NULL,
        version_num         INTEGER NOT NULL,
        revision_id         TEXT NOT NULL,
        state               TEXT NOT NULL,
        last_update_status  TEXT NOT NULL,
        code_sha256         TEXT NOT NULL,
        code_size           INTEGER NOT NULL,
        record              TEXT NOT NULL,
        PRIMARY KEY (name, version)
     );",
    // 2: the asynchronous invocation queue and metering records.
    "CREATE TABLE async_events (
        id            TEXT PRIMARY KEY,
        due_ms        INTEGER NOT NULL,
        leased_until  INTEGER NOT NULL DEFAULT 0,
        event         TEXT NOT NULL
     );
     CREATE INDEX async_events_due ON async_events (due_ms);
     CREATE TABLE invocations (
        request_id  TEXT NOT NULL,
        function    TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        record      TEXT NOT NULL
     );
     CREATE INDEX invocations_function ON invocations (function, started_ms);",
    // 3: published version numbering and aliases.
    "ALTER TABLE functions ADD COLUMN next_version INTEGER NOT NULL DEFAULT 1;
     CREATE TABLE aliases (
        function     TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        revision_id  TEXT NOT NULL,
        record       TEXT NOT NULL,
        PRIMARY KEY (function, name)
     );",
    // 4: layers.
    "CREATE TABLE layer_names (
        name          TEXT PRIMARY KEY,
        next_version  INTEGER NOT NULL
     );
     CREATE TABLE layer_versions (
        name         TEXT NOT NULL,
        version      INTEGER NOT NULL,
        code_sha256  TEXT NOT NULL,
        record       TEXT NOT NULL,
        PRIMARY KEY (name, version)
     );",
    // 5: settings beside the versions (reserved and provisioned concurrency, event invoke
    // configuration), keyed by function, kind and qualifier ('' for function-wide ones).
    "CREATE TABLE function_settings (
        function   TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        kind       TEXT NOT NULL,
        qualifier  TEXT NOT NULL,
        record     TEXT NOT NULL,
        PRIMARY KEY (function, kind, qualifier)
     );",
    // 6: resource policies and function URL configurations, per function and qualifier ('' is
    // the unqualified function). Deleting a function cascades; deleting an alias removes its
    // policy and URL (alias names can be reused; version numbers cannot, so a deleted
    // version's policy is unreachable and left alone: `update_version` deletes and re-inserts
    // rows, which a trigger on versions would mistake for a deletion).
    "CREATE TABLE function_policies (
        function     TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier    TEXT NOT NULL,
        revision_id  TEXT NOT NULL,
        record       TEXT NOT NULL,
        PRIMARY KEY (function, qualifier)
     );
     CREATE TABLE function_urls (
        function   TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier  TEXT NOT NULL,
        url_id     TEXT NOT NULL UNIQUE,
        record     TEXT NOT NULL,
        PRIMARY KEY (function, qualifier)
     );
     CREATE TRIGGER aliases_access_cleanup AFTER DELETE ON aliases
     BEGIN
        DELETE FROM function_policies WHERE function = OLD.function AND qualifier = OLD.name;
        DELETE FROM function_urls WHERE function = OLD.function AND qualifier = OLD.name;
     END;",
    // 7: the periods provisioned concurrency was configured, for metering. No foreign key:
    // they outlive the function (billing history). `end_ms` is NULL while a period lasts.
    "CREATE TABLE provisioned_intervals (
        id            INTEGER PRIMARY KEY,
        function      TEXT NOT NULL,
        qualifier     TEXT NOT NULL,
        version       TEXT NOT NULL,
        count         INTEGER NOT NULL,
        memory_mb     INTEGER NOT NULL,
        ephemeral_mb  INTEGER NOT NULL,
        architecture  TEXT NOT NULL,
        start_ms      INTEGER NOT NULL,
        end_ms        INTEGER
     );
     CREATE INDEX provisioned_intervals_function ON provisioned_intervals (function, start_ms);",
];

/// Brings the database up to the newest schema, one transaction per step.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (idx, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            idx + 1
        ))?;
    }
    Ok(())
}
