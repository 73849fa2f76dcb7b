// Package open chooses the query-side engine from configuration:
// config.ClickHouse.Engine "server" opens sinks/chserver, "chdb" opens
// sinks/chdb. libchdb.so is loaded only when "chdb" is chosen (sinks/chdb
// dlopens it in Open, never at init), so a binary pointed at a ClickHouse
// server runs on a machine without the library.
package open

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chserver"
)

// Open opens the engine cfg selects, bound to cfg.Database (created when
// missing).
func Open(ctx context.Context, cfg config.ClickHouse, log *slog.Logger) (sinks.Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Engine {
	case "server":
		return chserver.Open(ctx, chserver.Options{Addr: cfg.Addr, Database: cfg.Database, User: cfg.User, Password: cfg.Password, Log: log})
	case "chdb":
		return chdb.Open(ctx, chdb.Options{Lib: cfg.ChdbLib, Path: cfg.ChdbPath, Database: cfg.Database, Log: log})
	}
	return nil, fmt.Errorf("open ClickHouse engine: %q is not chdb or server", cfg.Engine)
}
