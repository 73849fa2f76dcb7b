package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/config"
)

// sessionParams make COPY's text output the text pgoutput sends capture
// (capture sets the same on its replication connection), so that the
// snapshot rows encode exactly like streamed rows.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "iso_8601",
	"extra_float_digits": "3",
}

func connect(ctx context.Context, url string, replication bool) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL URL: %w", err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = "orderflow-backfill"
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return conn, nil
}

// snapshot is an exported snapshot and the replication connection that
// exported it (the snapshot can be imported only while that connection
// stays idle in the state CREATE_REPLICATION_SLOT left it).
type snapshot struct {
	conn    *pgconn.PgConn
	slot    string
	name    string
	lsn     pglogrepl.LSN // the slot's consistent point
	created bool          // the permanent slot was created (not a temporary one)
	at      time.Time
	once    sync.Once
}

// version is the _version of snapshot rows: the consistent point minus one.
// Every transaction visible in the snapshot has a commit LSN below it (its
// commit record ends at or before the consistent point) and every streamed
// transaction's commit LSN is at or above the consistent point, so a
// snapshot row never ties with, nor overwrites, a streamed one.
func (s *snapshot) version() uint64 { return uint64(s.lsn) - 1 }

// release closes the exporting connection (dropping a temporary slot).
func (s *snapshot) release() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.conn.Close(ctx)
	})
}

func (s *snapshot) close() { s.release() }

// exportSnapshot creates a logical slot with EXPORT_SNAPSHOT: capture's
// permanent slot pg.Slot when it does not exist yet (and create is true), so
// that streaming starts exactly at the snapshot's consistent point; else a
// temporary slot used only for its snapshot (capture's slot is older than
// it, so every change after the snapshot is in the stream).
func exportSnapshot(ctx context.Context, pg config.Postgres, create bool, log *slog.Logger) (*snapshot, error) {
	meta, err := connect(ctx, pg.URL, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = meta.Close(context.Background()) }()
	var walLevel string
	if err := meta.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return nil, fmt.Errorf("read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return nil, fmt.Errorf("backfill needs wal_level=logical, the server has %q", walLevel)
	}
	var exists bool
	if err := meta.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", pg.Slot).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up replication slot: %w", err)
	}
	if !exists && !create {
		log.Warn("capture's replication slot does not exist and --no-create-slot is set: changes after the snapshot are captured by no slot", "slot", pg.Slot)
	}
	if !exists && create {
		// pgoutput reads the publication as of each decoded change: it must
		// exist before the slot's consistent point, or capture fails on the
		// first change with "publication does not exist".
		var pub bool
		if err := meta.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", pg.Publication).Scan(&pub); err != nil {
			return nil, fmt.Errorf("look up publication: %w", err)
		}
		if !pub {
			stmt := capture.PublicationSQL(pg.Publication, nil)
			if _, err := meta.Exec(ctx, stmt); err != nil {
				return nil, fmt.Errorf("create publication %s before the slot (run `orderflow capture -setup` as an administrator if this role may not): %w", pg.Publication, err)
			}
			log.Info("publication created", "publication", pg.Publication, "sql", stmt)
		}
	}
	rc, err := connect(ctx, pg.URL, true)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	conn := rc.PgConn()
	s := &snapshot{conn: conn}
	if !exists && create {
		res, err := pglogrepl.CreateReplicationSlot(ctx, conn, pg.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
		var pe *pgconn.PgError
		switch {
		case err == nil:
			s.slot, s.created = pg.Slot, true
			s.name = res.SnapshotName
			if s.lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
				_ = conn.Close(ctx)
				return nil, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
			}
			s.at = time.Now()
			log.Info("capture's replication slot created with the snapshot: streaming continues from its consistent point", "slot", pg.Slot)
			return s, nil
		case errors.As(err, &pe) && pe.Code == "42710":
			// Capture created it meanwhile: fall through to a temporary slot.
		default:
			_ = conn.Close(ctx)
			return nil, fmt.Errorf("create replication slot %s: %w", pg.Slot, err)
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	s.slot = "orderflow_backfill_" + hex.EncodeToString(b)
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("create temporary replication slot: %w", err)
	}
	s.name = res.SnapshotName
	if s.lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	s.at = time.Now()
	return s, nil
}
