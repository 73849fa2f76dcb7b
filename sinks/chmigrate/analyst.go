package chmigrate

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/sinks"
)

// AnalystUser is the read-only account for ad-hoc SQL on a ClickHouse server.
type AnalystUser struct {
	Name     string // default "analyst"
	Password string // required
}

// AnalystStatements is the SQL that creates (or updates) the read-only
// analyst user on a current ClickHouse server (SQL-driven access control,
// 20.5+): readonly = 1 in its settings (SELECT works; INSERT, ALTER, DROP,
// CREATE and SET are refused with READONLY, code 164) and SELECT on the
// database only. Name and password are quoted as literals, never spliced.
//
// ClickHouse 18.16 has no CREATE USER: give it a users.xml entry instead,
//
//	<profiles><readonly><readonly>1</readonly></readonly></profiles>
//	<users><analyst><password_sha256_hex>...</password_sha256_hex>
//	  <profile>readonly</profile><allow_databases><database>orderflow</database></allow_databases>
//	  <networks><ip>::/0</ip></networks><quota>default</quota></analyst></users>
func AnalystStatements(database string, u AnalystUser) ([]string, error) {
	if u.Name == "" {
		u.Name = "analyst"
	}
	if u.Password == "" {
		return nil, errors.New("analyst user: a password is required")
	}
	user := sinks.QuoteIdent(u.Name)
	return []string{
		"CREATE USER IF NOT EXISTS " + user + " IDENTIFIED WITH sha256_password BY " + sinks.QuoteString(u.Password) +
			" SETTINGS readonly = 1",
		"ALTER USER " + user + " IDENTIFIED WITH sha256_password BY " + sinks.QuoteString(u.Password) + " SETTINGS readonly = 1",
		"REVOKE ALL ON *.* FROM " + user,
		"GRANT SELECT ON " + sinks.QuoteIdent(database) + ".* TO " + user,
	}, nil
}

// EnsureAnalyst creates or updates the analyst user on e's server (run by
// `orderflow migrate` against a ClickHouse server; the embedded engine has no
// network users, analysts use `orderflow sql` and /v1/sql there, which run
// through sinks.QueryReadOnly).
func EnsureAnalyst(ctx context.Context, e sinks.Engine, u AnalystUser) error {
	sts, err := AnalystStatements(e.Database(), u)
	if err != nil {
		return err
	}
	for _, st := range sts {
		if err := e.Exec(ctx, st); err != nil {
			var ex *sinks.Exception
			if errors.As(err, &ex) && ex.Code == 62 { // SYNTAX_ERROR: a server without SQL access control
				return fmt.Errorf("create analyst user: this server has no CREATE USER (ClickHouse < 20.5, e.g. 18.16); "+
					"declare the user in users.xml with a readonly profile instead: %w", err)
			}
			return fmt.Errorf("create analyst user: %w", err)
		}
	}
	return nil
}
