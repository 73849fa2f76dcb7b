package chmigrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// VersionTable records applied migrations in the engine's database.
const VersionTable = "schema_migrations"

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string // file name, e.g. 0003_raw_campaigns.sql
	SQL      string
	Checksum string // sha256 of the file, hex
}

var fileRE = regexp.MustCompile(`^(\d{4})_[A-Za-z0-9_]+\.sql$`)

// Load reads the NNNN_name.sql files at the root of fsys in version order. It
// fails on a badly named .sql file, an empty file, a duplicate number or a
// gap (versions must be 1, 2, 3, ...).
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, de := range entries {
		if de.IsDir() || path.Ext(de.Name()) != ".sql" {
			continue
		}
		m := fileRE.FindStringSubmatch(de.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", de.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, de.Name(), v)
		}
		seen[v] = de.Name()
		b, err := fs.ReadFile(fsys, de.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", de.Name(), err)
		}
		if len(Statements(string(b))) == 0 {
			return nil, fmt.Errorf("migration %s has no statement", de.Name())
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: de.Name(), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (gap in the numbering)", m.Name, m.Version, i+1)
		}
	}
	return ms, nil
}

// Migrate applies, in order, the migrations of fsys that the engine's
// database has not recorded, and records each one in VersionTable after it
// succeeds. It returns the versions it applied (none when up to date).
//
// A migration whose file changed after it was applied, or a database that
// has a version this binary does not know, is an error. ClickHouse DDL is not
// transactional: a migration that fails halfway stays unrecorded and is run
// again in full next time, so each statement must be idempotent (CREATE ...
// IF NOT EXISTS, ADD COLUMN IF NOT EXISTS). Run one migrate at a time.
func Migrate(ctx context.Context, e sinks.Engine, fsys fs.FS, log *slog.Logger) ([]int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	if err := e.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+VersionTable+
		" (version UInt32, name String, checksum String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
		return nil, fmt.Errorf("create %s: %w", VersionTable, err)
	}
	applied, err := Applied(ctx, e)
	if err != nil {
		return nil, err
	}
	known := map[int]Migration{}
	for _, m := range ms {
		known[m.Version] = m
	}
	for v, sum := range applied {
		m, ok := known[v]
		if !ok {
			return nil, fmt.Errorf("database %s has migration %d, which this binary does not have (newer orderflow?)", e.Database(), v)
		}
		if m.Checksum != sum {
			return nil, fmt.Errorf("migration %s changed after it was applied (checksum %s, recorded %s); add a new migration instead", m.Name, short(m.Checksum), short(sum))
		}
	}
	var done []int
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		for i, st := range Statements(m.SQL) {
			if has, err := columnAdded(ctx, e, st); err != nil {
				return done, fmt.Errorf("migration %s statement %d: %w", m.Name, i+1, err)
			} else if has {
				log.Info("column already added, statement skipped", "stage", "migrate", "migration", m.Name, "statement", i+1)
				continue
			}
			if err := e.Exec(ctx, st); err != nil {
				return done, fmt.Errorf("migration %s statement %d: %w", m.Name, i+1, err)
			}
		}
		rec := []any{uint32(m.Version), m.Name, m.Checksum, time.Now().UTC().Truncate(time.Second)}
		if err := e.Insert(ctx, VersionTable, []string{"version", "name", "checksum", "applied_at"}, [][]any{rec}); err != nil {
			return done, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		log.Info("migration applied", "stage", "migrate", "version", m.Version, "name", m.Name)
		done = append(done, m.Version)
	}
	return done, nil
}

// addColumnRE matches ALTER TABLE t ADD COLUMN c ...: ClickHouse 18.16 has
// no ADD COLUMN IF NOT EXISTS, so Migrate makes it idempotent itself.
var addColumnRE = regexp.MustCompile(`(?is)^\s*(?:--[^\n]*\n\s*)*ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+ADD\s+COLUMN\s+([A-Za-z_][A-Za-z0-9_]*)\s`)

// columnAdded reports whether st is an ALTER TABLE ... ADD COLUMN whose
// column already exists (a migration that failed after the ALTER, before it
// was recorded, runs again).
func columnAdded(ctx context.Context, e sinks.Engine, st string) (bool, error) {
	m := addColumnRE.FindStringSubmatch(st)
	if m == nil {
		return false, nil
	}
	res, err := e.Query(ctx, "SELECT count() FROM system.columns WHERE database = "+sinks.QuoteString(e.Database())+
		" AND table = "+sinks.QuoteString(m[1])+" AND name = "+sinks.QuoteString(m[2]), nil)
	if err != nil {
		return false, fmt.Errorf("look up column %s.%s: %w", m[1], m[2], err)
	}
	return len(res.Rows) == 1 && fmt.Sprint(res.Rows[0][0]) != "0", nil
}

// Applied returns the recorded migrations: version -> checksum.
func Applied(ctx context.Context, e sinks.Engine) (map[int]string, error) {
	res, err := e.Query(ctx, "SELECT version, checksum FROM "+VersionTable+" FINAL", nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", VersionTable, err)
	}
	out := map[int]string{}
	for _, r := range res.Rows {
		v, ok := r[0].(uint64)
		if !ok {
			return nil, fmt.Errorf("read %s: version is %T", VersionTable, r[0])
		}
		out[int(v)] = fmt.Sprint(r[1])
	}
	return out, nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Statements splits SQL text at semicolons that are outside quotes and
// comments, dropping empty statements and comment-only ones.
func Statements(sql string) []string {
	var out []string
	var cur strings.Builder
	hasCode := false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" && hasCode {
			out = append(out, s)
		}
		cur.Reset()
		hasCode = false
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			cur.WriteString(sql[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			j := strings.Index(sql[i+2:], "*/")
			end := len(sql)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			cur.WriteString(sql[i:end])
			i = end - 1
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				if sql[j] == '\\' {
					j++
				}
				j++
			}
			end := min(j+1, len(sql))
			cur.WriteString(sql[i:end])
			hasCode = true
			i = end - 1
		case c == ';':
			flush()
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				hasCode = true
			}
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// ApplyFiles runs every statement of the named migration files of fsys (all
// of them, in version order, when names is empty) without recording them in
// VersionTable: for a throwaway test or benchmark database.
func ApplyFiles(ctx context.Context, e sinks.Engine, fsys fs.FS, names ...string) error {
	if len(names) == 0 {
		ms, err := Load(fsys)
		if err != nil {
			return err
		}
		for _, m := range ms {
			names = append(names, m.Name)
		}
	}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return fmt.Errorf("migration %s: %w", n, err)
		}
		for i, st := range Statements(string(b)) {
			if err := e.Exec(ctx, st); err != nil {
				return fmt.Errorf("migration %s statement %d: %w", n, i+1, err)
			}
		}
	}
	return nil
}
