// Package chmigrate applies numbered ClickHouse migrations (NNNN_name.sql at
// the root of an fs.FS, e.g. sinks/chschema's embed.FS) to a sinks.Engine.
//
// Contract: versions must run 1..N without gaps or duplicates (Load fails
// otherwise). Migrate records each applied file (version, name, sha256,
// time) in the engine database's schema_migrations table
// (ReplacingMergeTree ORDER BY version) after all its statements succeed, and
// skips recorded ones, so it is idempotent. A recorded file whose content
// changed, or a recorded version the binary lacks, is an error. There is no
// DDL transaction: statements must be idempotent so that a half-applied
// migration can run again. One migrate at a time.
//
// EnsureAnalyst creates the read-only `analyst` user (readonly = 1, SELECT
// on the database) on a current server; 18.16 needs a users.xml profile.
package chmigrate
