package load

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Tables are the command-side tables, parents first.
var Tables = []string{"customers", "products", "campaigns", "orders", "order_items"}

// TableSum is one table's row count and content checksum.
type TableSum struct {
	Table string
	Rows  int64
	MD5   string // md5 of every row's text form, in primary key order
}

// Checksums computes a checksum of every command-side table, with UTC
// timestamps, so two databases with identical contents compare equal.
func Checksums(ctx context.Context, conn *pgx.Conn) ([]TableSum, error) {
	var out []TableSum
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3"); err != nil {
			return err
		}
		for _, t := range Tables {
			s := TableSum{Table: t}
			if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, E'\n' ORDER BY t.id)), md5('')) FROM public.%s t`, t)).Scan(&s.Rows, &s.MD5); err != nil {
				return fmt.Errorf("checksum %s: %w", t, err)
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}
