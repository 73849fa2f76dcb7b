// Package envelope is the Kafka wire contract between ingest (capture, which
// writes it) and pipeline (the transformer, which reads it). It is the only
// package the two share.
//
// Topic: <prefix>.<schema>.<table>, one per captured table.
// Key:   JSON object of the primary-key columns, e.g. {"id":42}.
// Value: a Debezium-style change event (JSON, no schema block):
//
//	{
//	  "before": {...} | null,  // old row: full for deletes/updates with REPLICA IDENTITY FULL,
//	                           // else only the key columns (PostgreSQL sends no more)
//	  "after":  {...} | null,  // new row; null for deletes
//	  "source": {"version","connector":"postgresql","name":<prefix>,"db","schema","table",
//	             "lsn": <commit LSN as uint64>, "txId": <xid>, "ts_ms": <commit time, ms>,
//	             "snapshot": "false"|"true"|"last"},
//	  "op": "c"|"u"|"d"|"r",   // create, update, delete, read (snapshot)
//	  "ts_ms": <time capture produced the event, ms>,
//	  "unchanged": ["col", ...] // TOASTed columns whose value PostgreSQL did not send
//	}
//
// Unchanged TOAST values: PostgreSQL does not resend an unchanged TOASTed
// column on UPDATE. Such a column is left out of "after" and named in
// "unchanged"; a consumer must carry the previous value forward from its
// state. No placeholder is ever published as a value. Debezium's placeholder
// string "__debezium_unavailable_value" is decoded the same way.
//
// Column values: JSON null for NULL; integers as JSON numbers; numeric as a
// decimal string (exact); text, uuid, enum as strings; bool as true/false;
// timestamptz as RFC 3339 UTC with microseconds ("2026-01-02T03:04:05.123456Z");
// timestamp without zone the same without "Z"; date as "YYYY-MM-DD"; jsonb and
// json as the JSON value itself; arrays as JSON arrays; float4/float8 as JSON
// numbers (NaN and ±Infinity as the strings "NaN", "Infinity", "-Infinity");
// bytea as a base64 string; time, timetz, interval (ISO 8601) and other types
// capture decodes through pgx (inet, point, tsvector, ...) as PostgreSQL's text
// form. Infinite timestamps and dates are "infinity"/"-infinity". A column
// type capture cannot decode sends the change to the dead-letter topic
// <prefix>.dlq instead (reason in the "reason" header). Decoders also accept
// Debezium's default encodings: timestamps as integer micro/milliseconds, dates
// as integer days since 1970-01-01, and the {"schema","payload"} wrapper.
//
// Key: capture publishes the primary-key columns; an UPDATE that changes the
// primary key is published as a delete of the old key and a create of the new
// one. "before" of an update without REPLICA IDENTITY FULL holds the key.
// All events of one PostgreSQL transaction carry its commit LSN and appear in
// one Kafka transaction (read with isolation.level=read_committed).
//
// Headers: "lsn" (decimal commit LSN), "commit_ts_ms", "txid".
package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Ops.
const (
	OpCreate = "c"
	OpUpdate = "u"
	OpDelete = "d"
	OpRead   = "r"
)

// DebeziumUnavailable is Debezium's placeholder for an unchanged TOAST value.
const DebeziumUnavailable = "__debezium_unavailable_value"

// Header names.
const (
	HeaderLSN      = "lsn"
	HeaderCommitTs = "commit_ts_ms"
	HeaderTxID     = "txid"
)

// Source describes where and when the change was committed.
type Source struct {
	Version   string `json:"version"`
	Connector string `json:"connector"`
	Name      string `json:"name"`
	DB        string `json:"db"`
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	LSN       uint64 `json:"lsn"`
	TxID      int64  `json:"txId"`
	TsMs      int64  `json:"ts_ms"`
	Snapshot  string `json:"snapshot"`
}

// Row is one row image: column name to decoded JSON value (json.Number for
// numbers, string, bool, nil, map[string]any, []any).
type Row map[string]any

// Event is one change event.
type Event struct {
	Before    Row      `json:"before"`
	After     Row      `json:"after"`
	Source    Source   `json:"source"`
	Op        string   `json:"op"`
	TsMs      int64    `json:"ts_ms"`
	Unchanged []string `json:"unchanged,omitempty"`
}

// Version is the envelope's source.version.
const Version = "orderflow-1"

// Encode renders e as the JSON value of a Kafka record.
func Encode(e *Event) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Topic is the topic name of a table.
func Topic(prefix, schema, table string) string { return prefix + "." + schema + "." + table }

// ErrPoison marks an event that can never be decoded; it belongs on the
// dead-letter topic.
var ErrPoison = errors.New("poison event")

// Decode parses a record value written by orderflow or by Debezium (with or
// without the schema wrapper). A nil value (a Kafka tombstone) returns
// (nil, nil): tombstones carry no change. Errors wrap ErrPoison.
func Decode(value []byte) (*Event, error) {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: value is not a JSON object: %v", ErrPoison, err)
	}
	if p, ok := raw["payload"]; ok && raw["op"] == nil {
		if bytes.Equal(bytes.TrimSpace(p), []byte("null")) {
			return nil, nil
		}
		return Decode(p)
	}
	var e Event
	dec = json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPoison, err)
	}
	// Debezium's TOAST placeholder becomes an explicit "unchanged" column.
	for k, v := range e.After {
		if s, ok := v.(string); ok && s == DebeziumUnavailable {
			delete(e.After, k)
			e.Unchanged = append(e.Unchanged, k)
		}
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *Event) validate() error {
	switch e.Op {
	case OpCreate, OpRead:
		if e.After == nil {
			return fmt.Errorf("%w: op %q without \"after\"", ErrPoison, e.Op)
		}
	case OpUpdate:
		if e.After == nil {
			return fmt.Errorf("%w: op \"u\" without \"after\"", ErrPoison)
		}
	case OpDelete:
		if e.Before == nil {
			return fmt.Errorf("%w: op \"d\" without \"before\"", ErrPoison)
		}
	default:
		return fmt.Errorf("%w: unknown op %q", ErrPoison, e.Op)
	}
	if e.Source.Table == "" {
		return fmt.Errorf("%w: source.table is empty", ErrPoison)
	}
	return nil
}

// Image is the row state the event leaves: After, or Before for deletes.
func (e *Event) Image() Row {
	if e.Op == OpDelete {
		return e.Before
	}
	return e.After
}

// Int reads an integer column.
func (r Row) Int(col string) (int64, bool, error) {
	v, ok := r[col]
	if !ok || v == nil {
		return 0, false, nil
	}
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return 0, false, fmt.Errorf("column %s: %q is not an integer", col, x)
		}
		return n, true, nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("column %s: %q is not an integer", col, x)
		}
		return n, true, nil
	case float64:
		return int64(x), true, nil
	}
	return 0, false, fmt.Errorf("column %s: %T is not an integer", col, v)
}

// String reads a text column.
func (r Row) String(col string) (string, bool, error) {
	v, ok := r[col]
	if !ok || v == nil {
		return "", false, nil
	}
	switch x := v.(type) {
	case string:
		return x, true, nil
	case json.Number:
		return x.String(), true, nil
	case bool:
		return strconv.FormatBool(x), true, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false, fmt.Errorf("column %s: %v", col, err)
	}
	return string(b), true, nil
}

// Decimal reads a numeric column as its exact decimal text.
func (r Row) Decimal(col string) (string, bool, error) {
	v, ok := r[col]
	if !ok || v == nil {
		return "", false, nil
	}
	switch x := v.(type) {
	case string:
		if _, err := strconv.ParseFloat(x, 64); err != nil {
			return "", false, fmt.Errorf("column %s: %q is not a decimal", col, x)
		}
		return x, true, nil
	case json.Number:
		return x.String(), true, nil
	}
	return "", false, fmt.Errorf("column %s: %T is not a decimal", col, v)
}

// Time reads a timestamp column: RFC 3339 text (with or without zone, read as
// UTC when absent), or Debezium's integer microseconds (or milliseconds when
// the value is too small to be microseconds of a date after 1970-04).
func (r Row) Time(col string) (time.Time, bool, error) {
	v, ok := r[col]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	switch x := v.(type) {
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC(), true, nil
			}
		}
		return time.Time{}, false, fmt.Errorf("column %s: %q is not a timestamp", col, x)
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("column %s: %q is not a timestamp", col, x)
		}
		if n > 1e13 || n < -1e13 {
			return time.UnixMicro(n).UTC(), true, nil
		}
		return time.UnixMilli(n).UTC(), true, nil
	}
	return time.Time{}, false, fmt.Errorf("column %s: %T is not a timestamp", col, v)
}

// Date reads a date column: "YYYY-MM-DD" or Debezium's days since 1970-01-01.
func (r Row) Date(col string) (time.Time, bool, error) {
	v, ok := r[col]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	if n, isNum := v.(json.Number); isNum {
		d, err := n.Int64()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("column %s: %q is not a date", col, n)
		}
		return time.Unix(0, 0).UTC().AddDate(0, 0, int(d)), true, nil
	}
	s, _ := v.(string)
	t, err := time.Parse("2006-01-02", strings.TrimSpace(s))
	if err != nil {
		return r.Time(col)
	}
	return t, true, nil
}

// Bool reads a boolean column.
func (r Row) Bool(col string) (bool, bool, error) {
	v, ok := r[col]
	if !ok || v == nil {
		return false, false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, true, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, false, fmt.Errorf("column %s: %q is not a boolean", col, x)
		}
		return b, true, nil
	}
	return false, false, fmt.Errorf("column %s: %T is not a boolean", col, v)
}

// FormatTime renders a timestamptz value the way capture publishes it.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
