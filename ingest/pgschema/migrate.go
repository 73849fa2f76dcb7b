package pgschema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Schema is the schema holding orderflow's bookkeeping tables
// (schema_migrations, idempotency_keys); business tables live in public.
const Schema = "orderflow_internal"

// lockKey is the pg_advisory_xact_lock key that serialises migrators
// ("orderflow" in ASCII, truncated to 63 bits).
const lockKey int64 = 0x6f72646572666c6f

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string // file name without the number and extension
	SQL     string
}

var fileRe = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order. It fails when
// a file is misnamed, a number is used twice or a number is skipped.
func Migrations() ([]Migration, error) {
	return load(migrationFS, "migrations")
}

func load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("migration %s: directories are not allowed", e.Name())
		}
		m := fileRe.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_lower_snake.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: m[2], SQL: string(b)})
	}
	return ms, checkSequence(ms)
}

// checkSequence sorts ms and requires versions 1, 2, ..., n.
func checkSequence(ms []Migration) error {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	var errs []error
	for i, m := range ms {
		if i > 0 && ms[i-1].Version == m.Version {
			errs = append(errs, fmt.Errorf("migration number %04d is used twice (%s, %s)", m.Version, ms[i-1].Name, m.Name))
			continue
		}
		want := 1
		if i > 0 {
			want = ms[i-1].Version + 1
		}
		if m.Version != want {
			errs = append(errs, fmt.Errorf("migration number %04d is missing (next is %04d_%s)", want, m.Version, m.Name))
		}
	}
	if len(ms) == 0 {
		errs = append(errs, errors.New("no migrations"))
	}
	return errors.Join(errs...)
}

// Latest is the highest embedded migration version.
func Latest() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Beginner is what Migrate needs: *pgx.Conn and *pgxpool.Pool both fit.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Result says what Migrate did.
type Result struct {
	From, To int   // schema version before and after
	Applied  []int // versions applied now
}

// Migrate brings the database to the latest embedded version. It runs in one
// transaction holding an advisory lock, so concurrent migrators serialise and
// either every pending migration is applied or none is. Re-running is a
// no-op. A database at a newer version than this binary knows is an error.
func Migrate(ctx context.Context, db Beginner) (Result, error) {
	ms, err := Migrations()
	if err != nil {
		return Result{}, err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("begin migration: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return Result{}, fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+Schema+`;
CREATE TABLE IF NOT EXISTS `+Schema+`.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return Result{}, fmt.Errorf("create schema_migrations: %w", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+Schema+".schema_migrations").Scan(&cur); err != nil {
		return Result{}, fmt.Errorf("read schema version: %w", err)
	}
	res := Result{From: cur, To: cur}
	latest := ms[len(ms)-1].Version
	if cur > latest {
		return res, fmt.Errorf("database schema is at version %d, newer than this binary's %d: upgrade orderflow", cur, latest)
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return Result{From: cur, To: cur}, fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+Schema+".schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return Result{From: cur, To: cur}, fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		res.Applied = append(res.Applied, m.Version)
		res.To = m.Version
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{From: cur, To: cur}, fmt.Errorf("commit migrations: %w", err)
	}
	return res, nil
}

// Querier runs one query; *pgx.Conn, *pgxpool.Pool and pgx.Tx fit.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Version returns the database's schema version (0 before any migration).
func Version(ctx context.Context, q Querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('"+Schema+".schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+Schema+".schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// CheckCurrent returns an error unless the database is at Latest(); the API
// uses it as a readiness check.
func CheckCurrent(ctx context.Context, q Querier) error {
	v, err := Version(ctx, q)
	if err != nil {
		return err
	}
	if l := Latest(); v != l {
		return fmt.Errorf("schema version %d, want %d (run `orderflow migrate`)", v, l)
	}
	return nil
}
