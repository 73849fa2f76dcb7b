package capture

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SetupSQL is the documented administrator script (setup.sql) that prepares
// a database for capture with a dedicated least-privilege role. Setup runs
// the same statements.
//
//go:embed setup.sql
var SetupSQL string

// SetupOptions are the inputs of Setup.
type SetupOptions struct {
	// Role and Password of the capture role (LOGIN REPLICATION, SELECT on the
	// published tables, nothing else). An empty Role only creates the
	// publication. An empty Password leaves an existing role's password.
	Role     string
	Password string
	// Publication and Tables as in Options.
	Publication string
	Tables      []string
}

// Setup prepares the database at conn (an administrator: superuser, or owner
// of the tables with CREATEROLE) and returns the statements it ran.
func Setup(ctx context.Context, conn *pgx.Conn, o SetupOptions) ([]string, error) {
	var ran []string
	exec := func(stmt string, args ...any) error {
		if _, err := conn.Exec(ctx, stmt, args...); err != nil {
			return fmt.Errorf("%s: %w", redactPassword(stmt), err)
		}
		ran = append(ran, redactPassword(stmt))
		return nil
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", o.Publication).Scan(&exists); err != nil {
		return ran, fmt.Errorf("look up publication: %w", err)
	}
	if !exists {
		if err := exec(PublicationSQL(o.Publication, o.Tables)); err != nil {
			return ran, err
		}
	}
	if o.Role == "" {
		return ran, nil
	}
	role := pgx.Identifier{o.Role}.Sanitize()
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", o.Role).Scan(&exists); err != nil {
		return ran, fmt.Errorf("look up role: %w", err)
	}
	attrs := " WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE"
	if o.Password != "" {
		attrs += " PASSWORD " + quoteLiteral(o.Password)
	}
	if exists {
		if err := exec("ALTER ROLE " + role + attrs); err != nil {
			return ran, err
		}
	} else if err := exec("CREATE ROLE " + role + attrs); err != nil {
		return ran, err
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return ran, err
	}
	if err := exec("GRANT CONNECT ON DATABASE " + pgx.Identifier{db}.Sanitize() + " TO " + role); err != nil {
		return ran, err
	}
	if len(o.Tables) == 0 {
		for _, s := range []string{
			"GRANT USAGE ON SCHEMA public TO " + role,
			"GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + role,
			// Tables created later (the publication covers them too).
			"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO " + role,
		} {
			if err := exec(s); err != nil {
				return ran, err
			}
		}
		return ran, nil
	}
	schemas := map[string]bool{}
	names := make([]string, len(o.Tables))
	for i, t := range o.Tables {
		names[i] = qualified(t)
		s, _, ok := strings.Cut(t, ".")
		if !ok {
			s = "public"
		}
		schemas[s] = true
	}
	for s := range schemas {
		if err := exec("GRANT USAGE ON SCHEMA " + pgx.Identifier{s}.Sanitize() + " TO " + role); err != nil {
			return ran, err
		}
	}
	if err := exec("GRANT SELECT ON " + strings.Join(names, ", ") + " TO " + role); err != nil {
		return ran, err
	}
	return ran, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func redactPassword(stmt string) string {
	if i := strings.Index(stmt, " PASSWORD '"); i >= 0 {
		return stmt[:i] + " PASSWORD '***'"
	}
	return stmt
}
