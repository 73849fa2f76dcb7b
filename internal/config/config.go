// Package config holds orderflow's one configuration struct. Every setting is a
// command-line flag with an ORDERFLOW_* environment-variable equivalent
// (flag "kafka-brokers" <-> ORDERFLOW_KAFKA_BROKERS). A flag given on the
// command line wins over the environment, which wins over the default.
// The struct is loaded once in cmd/orderflow and passed down; no other package
// reads the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of the local stack started by `make up` (scripts/env.sh) and of
// deploy/ (docker-compose.yml). A test checks the compose file against them.
const (
	DefaultPostgresURL    = "postgres://orderflow:orderflow@127.0.0.1:55432/orderflow?sslmode=disable"
	DefaultKafkaBrokers   = "127.0.0.1:59092"
	DefaultClickHouseAddr = "127.0.0.1:59000"
	DefaultHTTPAddr       = "127.0.0.1:8080"
	DefaultChdbLib        = ".local/cache/chdb/libchdb.so"
	DefaultChdbPath       = ".local/chdb"
)

// Config is the whole configuration of every subcommand. Sections a
// subcommand does not use keep their defaults and are not validated.
type Config struct {
	Log        Log
	HTTP       HTTP
	Postgres   Postgres
	Kafka      Kafka
	ClickHouse ClickHouse
	API        API
}

// Log configures log/slog.
type Log struct {
	Level  string // debug, info, warn, error
	Format string // text, json
}

// HTTP configures the one HTTP listener (API, reports, /metrics, /healthz, /readyz).
type HTTP struct {
	Addr string
}

// Postgres configures the command-side database and capture.
type Postgres struct {
	URL         string
	Slot        string
	Publication string
}

// Kafka configures the brokers and the topic naming.
type Kafka struct {
	Brokers       []string
	TopicPrefix   string
	TLS           bool
	TLSCAFile     string
	SASLMechanism string // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUser      string
	SASLPassword  string
}

// ClickHouse configures the query-side engine: a ClickHouse server or the
// embedded chDB engine.
type ClickHouse struct {
	Engine   string // "chdb" or "server"
	Addr     string
	Database string
	User     string
	Password string
	ChdbLib  string
	ChdbPath string
}

// API configures the command API.
type API struct {
	Token        string
	MaxBodyBytes int64
}

// Section names a part of Config a subcommand uses.
type Section int

// Sections.
const (
	SecHTTP Section = iota
	SecPostgres
	SecKafka
	SecClickHouse
	SecAPI
)

// Loader binds Config fields to a flag set and the environment.
type Loader struct {
	fs       *flag.FlagSet
	env      func(string) string
	sections []Section
	envErrs  []error
}

// Bind registers the flags of the given sections (logging is always bound) on
// fs, taking defaults from the environment through getenv (os.Getenv when nil).
func Bind(fs *flag.FlagSet, c *Config, getenv func(string) string, sections ...Section) *Loader {
	if getenv == nil {
		getenv = os.Getenv
	}
	l := &Loader{fs: fs, env: getenv, sections: sections}
	l.str(&c.Log.Level, "log-level", "info", "log level: debug, info, warn, error")
	l.str(&c.Log.Format, "log-format", "text", "log format: text or json")
	for _, s := range sections {
		switch s {
		case SecHTTP:
			l.str(&c.HTTP.Addr, "http-addr", DefaultHTTPAddr, "HTTP listen address (API, reports, /metrics, /healthz, /readyz)")
		case SecPostgres:
			l.str(&c.Postgres.URL, "pg-url", DefaultPostgresURL, "PostgreSQL connection URL")
			l.str(&c.Postgres.Slot, "pg-slot", "orderflow", "logical replication slot name")
			l.str(&c.Postgres.Publication, "pg-publication", "orderflow", "publication name")
		case SecKafka:
			l.list(&c.Kafka.Brokers, "kafka-brokers", DefaultKafkaBrokers, "comma-separated Kafka bootstrap brokers")
			l.str(&c.Kafka.TopicPrefix, "kafka-topic-prefix", "orderflow", "topic prefix: topics are <prefix>.<schema>.<table>")
			l.boolean(&c.Kafka.TLS, "kafka-tls", false, "connect to Kafka with TLS")
			l.str(&c.Kafka.TLSCAFile, "kafka-tls-ca-file", "", "PEM file of CAs to trust for Kafka TLS (system roots when empty)")
			l.str(&c.Kafka.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (none when empty)")
			l.str(&c.Kafka.SASLUser, "kafka-sasl-user", "", "SASL user name")
			l.str(&c.Kafka.SASLPassword, "kafka-sasl-password", "", "SASL password")
		case SecClickHouse:
			l.str(&c.ClickHouse.Engine, "clickhouse-engine", "chdb", "ClickHouse engine: chdb (embedded) or server")
			l.str(&c.ClickHouse.Addr, "clickhouse-addr", DefaultClickHouseAddr, "ClickHouse server native-protocol address (engine=server)")
			l.str(&c.ClickHouse.Database, "clickhouse-database", "orderflow", "ClickHouse database")
			l.str(&c.ClickHouse.User, "clickhouse-user", "default", "ClickHouse server user (engine=server)")
			l.str(&c.ClickHouse.Password, "clickhouse-password", "", "ClickHouse server password (engine=server)")
			l.str(&c.ClickHouse.ChdbLib, "chdb-lib", DefaultChdbLib, "path of libchdb.so (engine=chdb)")
			l.str(&c.ClickHouse.ChdbPath, "chdb-path", DefaultChdbPath, "data directory of the embedded engine (engine=chdb)")
		case SecAPI:
			l.str(&c.API.Token, "api-token", "", "bearer token required on command API requests (no auth when empty)")
			l.int64(&c.API.MaxBodyBytes, "api-max-body-bytes", 1<<20, "largest accepted request body in bytes")
		}
	}
	return l
}

// EnvName is the environment variable that sets flag name.
func EnvName(flagName string) string {
	return "ORDERFLOW_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

func (l *Loader) envOr(name, def string) string {
	if v := l.env(EnvName(name)); v != "" {
		return v
	}
	return def
}

func (l *Loader) str(p *string, name, def, usage string) {
	l.fs.StringVar(p, name, l.envOr(name, def), usage+" ["+EnvName(name)+"]")
}

func (l *Loader) list(p *[]string, name, def, usage string) {
	*p = splitList(l.envOr(name, def))
	l.fs.Func(name, usage+" (default "+strconv.Quote(def)+") ["+EnvName(name)+"]", func(s string) error {
		*p = splitList(s)
		return nil
	})
}

// envDefault is flag name's default: the environment's value parsed by
// parse, or def. A value that does not parse is kept for Parse to report.
func envDefault[T any](l *Loader, name string, def T, parse func(string) (T, error), kind string) T {
	s := l.env(EnvName(name))
	if s == "" {
		return def
	}
	v, err := parse(s)
	if err != nil {
		l.envErrs = append(l.envErrs, fmt.Errorf("%s=%q: not %s", EnvName(name), s, kind))
		return def
	}
	return v
}

func tag(name, usage string) string { return usage + " [" + EnvName(name) + "]" }

func (l *Loader) boolean(p *bool, name string, def bool, usage string) {
	l.fs.BoolVar(p, name, envDefault(l, name, def, strconv.ParseBool, "a boolean"), tag(name, usage))
}

func (l *Loader) int64(p *int64, name string, def int64, usage string) {
	parse := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	l.fs.Int64Var(p, name, envDefault(l, name, def, parse, "an integer"), tag(name, usage))
}

// Duration binds a duration flag; subcommands use it for their own settings.
func (l *Loader) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	l.fs.DurationVar(p, name, envDefault(l, name, def, time.ParseDuration, "a duration (e.g. 500ms, 2s)"), tag(name, usage))
}

// Int binds an int flag; subcommands use it for their own settings.
func (l *Loader) Int(p *int, name string, def int, usage string) {
	l.fs.IntVar(p, name, envDefault(l, name, def, strconv.Atoi, "an integer"), tag(name, usage))
}

// String binds a string flag; subcommands use it for their own settings.
func (l *Loader) String(p *string, name, def, usage string) { l.str(p, name, def, usage) }

// Bool binds a bool flag; subcommands use it for their own settings.
func (l *Loader) Bool(p *bool, name string, def bool, usage string) { l.boolean(p, name, def, usage) }

// Int64 binds an int64 flag; subcommands use it for their own settings.
func (l *Loader) Int64(p *int64, name string, def int64, usage string) { l.int64(p, name, def, usage) }

// Float binds a float64 flag; subcommands use it for their own settings.
func (l *Loader) Float(p *float64, name string, def float64, usage string) {
	parse := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
	l.fs.Float64Var(p, name, envDefault(l, name, def, parse, "a number"), tag(name, usage))
}

// Parse parses args and validates the bound sections. Errors name the flag
// or environment variable at fault.
func (l *Loader) Parse(c *Config, args []string) error {
	if err := l.fs.Parse(args); err != nil {
		return err
	}
	if len(l.envErrs) > 0 {
		return errors.Join(l.envErrs...)
	}
	return c.Validate(l.sections...)
}

// Validate checks the given sections (logging always).
func (c *Config) Validate(sections ...Section) error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("invalid -%s (%s): %s", flagName, EnvName(flagName), fmt.Sprintf(format, a...)))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log-format", "%q is not text or json", c.Log.Format)
	}
	for _, s := range sections {
		switch s {
		case SecHTTP:
			if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
				bad("http-addr", "%q is not host:port", c.HTTP.Addr)
			}
		case SecPostgres:
			u, err := url.Parse(c.Postgres.URL)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				bad("pg-url", "want postgres://user:pass@host:port/db")
			}
			if !isIdent(c.Postgres.Slot) {
				bad("pg-slot", "%q: use lower-case letters, digits and _", c.Postgres.Slot)
			}
			if !isIdent(c.Postgres.Publication) {
				bad("pg-publication", "%q: use lower-case letters, digits and _", c.Postgres.Publication)
			}
		case SecKafka:
			if len(c.Kafka.Brokers) == 0 {
				bad("kafka-brokers", "at least one host:port is needed")
			}
			for _, b := range c.Kafka.Brokers {
				if _, _, err := net.SplitHostPort(b); err != nil {
					bad("kafka-brokers", "%q is not host:port", b)
				}
			}
			if c.Kafka.TopicPrefix == "" || strings.ContainsAny(c.Kafka.TopicPrefix, " /\\") {
				bad("kafka-topic-prefix", "%q: use letters, digits, '.', '_' or '-'", c.Kafka.TopicPrefix)
			}
			switch c.Kafka.SASLMechanism {
			case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				bad("kafka-sasl-mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Kafka.SASLMechanism)
			}
			if c.Kafka.SASLMechanism != "" && c.Kafka.SASLUser == "" {
				bad("kafka-sasl-user", "required with -kafka-sasl-mechanism")
			}
		case SecClickHouse:
			switch c.ClickHouse.Engine {
			case "chdb":
				if c.ClickHouse.ChdbLib == "" {
					bad("chdb-lib", "path of libchdb.so is required with -clickhouse-engine=chdb")
				}
				if c.ClickHouse.ChdbPath == "" {
					bad("chdb-path", "a data directory is required with -clickhouse-engine=chdb")
				}
			case "server":
				if _, _, err := net.SplitHostPort(c.ClickHouse.Addr); err != nil {
					bad("clickhouse-addr", "%q is not host:port", c.ClickHouse.Addr)
				}
			default:
				bad("clickhouse-engine", "%q is not chdb or server", c.ClickHouse.Engine)
			}
			if !isIdent(c.ClickHouse.Database) {
				bad("clickhouse-database", "%q: use lower-case letters, digits and _", c.ClickHouse.Database)
			}
		case SecAPI:
			if c.API.MaxBodyBytes < 1024 {
				bad("api-max-body-bytes", "%d is below 1024", c.API.MaxBodyBytes)
			}
		}
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// FlagSet is the flag set the loader binds to.
func (l *Loader) FlagSet() *flag.FlagSet { return l.fs }

// Getenv is the environment lookup the loader reads defaults from.
func (l *Loader) Getenv() func(string) string { return l.env }

// Multi binds a repeatable string flag (each use appends); its environment
// variable holds a comma-separated list. Subcommands use it for their own
// settings (e.g. report --param k=v).
func (l *Loader) Multi(p *[]string, name, usage string) {
	*p = splitList(l.env(EnvName(name)))
	fromEnv := len(*p) > 0
	l.fs.Func(name, usage+" (repeatable) ["+EnvName(name)+"]", func(s string) error {
		if fromEnv { // the command line replaces the environment's list
			*p, fromEnv = nil, false
		}
		*p = append(*p, s)
		return nil
	})
}
