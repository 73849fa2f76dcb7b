-- Prepare a database for `orderflow capture` with a least-privilege role.
-- Run once per database as an administrator (superuser, or the owner of the
-- tables with CREATEROLE), e.g.
--
--   psql "$ADMIN_URL" -v role=orderflow_capture -v password=secret \
--        -v publication=orderflow -f ingest/capture/setup.sql
--
-- or let orderflow run the same statements:
--
--   orderflow capture -setup -setup-role orderflow_capture \
--        -setup-password secret -pg-url "$ADMIN_URL"
--
-- Capture then connects as that role
-- (postgres://orderflow_capture:secret@host/db). It needs only:
--   * REPLICATION: to create its logical slot and stream from it, and to call
--     pg_logical_emit_message for heartbeats;
--   * SELECT on the published tables (and USAGE on their schema).
-- It does not own any table, cannot create the publication and is no
-- superuser. REPLICA IDENTITY FULL is not needed (DEFAULT uses the primary key).
-- PostgreSQL needs wal_level = logical, and pg_hba.conf must let the role
-- connect to the database (logical replication uses the database's entries).

CREATE ROLE :"role" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"role";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"role";

-- Every table of schema public, including tables created later. To capture
-- a fixed list instead: CREATE PUBLICATION ... FOR TABLE public.customers, ...
CREATE PUBLICATION :"publication" FOR TABLES IN SCHEMA public;
