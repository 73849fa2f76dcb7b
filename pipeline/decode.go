package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"github.com/go-faster/jx"

	"github.com/orderflow/orderflow/internal/envelope"
)

// errSlowPath makes decodeEvent fall back to envelope.Decode.
var errSlowPath = errors.New("slow path")

// columnNames interns column-name strings (a handful of distinct names).
var columnNames sync.Map

func columnName(b []byte) string {
	if v, ok := columnNames.Load(string(b)); ok {
		return v.(string)
	}
	s := string(b)
	columnNames.Store(s, s)
	return s
}

// envStrings interns the envelope's low-cardinality strings (op, source
// table, schema, db, name, version, connector, snapshot): one allocation per
// distinct value instead of eight per event.
var envStrings struct {
	sync.RWMutex
	m map[string]string
}

// internedStr reads a JSON string, interned when short.
func internedStr(d *jx.Decoder) (string, error) {
	if d.Next() != jx.String {
		return d.Str() // the decoder's own error
	}
	b, err := d.StrBytes()
	if err != nil {
		return string(b), err
	}
	return internBytes(b), nil
}

// internBytes is b as a string, interned when short.
func internBytes(b []byte) string {
	if len(b) > 64 {
		return string(b)
	}
	envStrings.RLock()
	s, ok := envStrings.m[string(b)]
	envStrings.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	envStrings.Lock()
	if envStrings.m == nil {
		envStrings.m = map[string]string{}
	}
	if len(envStrings.m) < 4096 {
		envStrings.m[s] = s
	}
	envStrings.Unlock()
	return s
}

// decodeEvent parses a record value in one pass for the envelope capture
// writes, and returns the raw JSON of "before" and "after" (for the change
// log, so it is not re-encoded). Anything unusual (Debezium's schema wrapper
// or TOAST placeholder, an invalid event) goes through envelope.Decode, which
// defines the semantics; the fast path yields the same Event.
func decodeEvent(value []byte) (ev *envelope.Event, before, after []byte, err error) {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil, nil, nil, nil
	}
	ev, before, after, err = decodeFast(value, true)
	if err == nil {
		return ev, before, after, nil
	}
	ev, err = envelope.Decode(value)
	return ev, nil, nil, err
}

// decodeEventLazy is decodeEvent without building the images' maps on the
// fast path (Before/After stay nil; the raw images are returned and decoded
// straight into the table structs by the core).
func decodeEventLazy(value []byte) (ev *envelope.Event, before, after []byte, err error) {
	return decodeEventLazyInto(value, new(envelope.Event))
}

// decodeEventLazyInto is decodeEventLazy decoding the fast path into *into
// (which it returns then; the slow path returns a new Event).
func decodeEventLazyInto(value []byte, into *envelope.Event) (ev *envelope.Event, before, after []byte, err error) {
	var c envInterner
	return decodeEventScan(value, into, &c)
}

// decodeEventScan is decodeEventLazyInto through the envelope scanner
// first (scan.go), c holding the previous record's strings.
func decodeEventScan(value []byte, into *envelope.Event, c *envInterner) (ev *envelope.Event, before, after []byte, err error) {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil, nil, nil, nil
	}
	if before, after, ok := scanEnvelope(into, value, c); ok {
		return into, before, after, nil
	}
	*into = envelope.Event{}
	before, after, err = decodeFastInto(into, value, false)
	if err == nil {
		return into, before, after, nil
	}
	*into = envelope.Event{}
	ev, err = envelope.Decode(value)
	return ev, nil, nil, err
}

func decodeFast(value []byte, maps bool) (*envelope.Event, []byte, []byte, error) {
	e := new(envelope.Event)
	before, after, err := decodeFastInto(e, value, maps)
	if err != nil {
		return nil, nil, nil, err
	}
	return e, before, after, nil
}

// decodeFastInto decodes value into *e (zero on entry).
func decodeFastInto(e *envelope.Event, value []byte, maps bool) ([]byte, []byte, error) {
	var before, after []byte
	d := jx.GetDecoder()
	defer jx.PutDecoder(d)
	d.ResetBytes(value)
	err := d.ObjBytes(func(d *jx.Decoder, key []byte) error {
		switch string(key) {
		case "before", "after":
			if d.Next() == jx.Null {
				return d.Null()
			}
			raw, err := d.Raw()
			if err != nil {
				return err
			}
			if !maps {
				if key[0] == 'b' {
					before = raw
				} else {
					after = raw
				}
				return nil
			}
			row, err := decodeRow(raw)
			if err != nil {
				return err
			}
			if key[0] == 'b' {
				before, e.Before = raw, row
			} else {
				after, e.After = raw, row
			}
			return nil
		case "source":
			return d.ObjBytes(func(d *jx.Decoder, key []byte) error {
				var err error
				switch string(key) {
				case "lsn":
					e.Source.LSN, err = d.UInt64()
				case "txId":
					e.Source.TxID, err = d.Int64()
				case "ts_ms":
					e.Source.TsMs, err = d.Int64()
				case "table":
					e.Source.Table, err = internedStr(d)
				case "schema":
					e.Source.Schema, err = internedStr(d)
				case "db":
					e.Source.DB, err = internedStr(d)
				case "name":
					e.Source.Name, err = internedStr(d)
				case "version":
					e.Source.Version, err = internedStr(d)
				case "connector":
					e.Source.Connector, err = internedStr(d)
				case "snapshot":
					if d.Next() != jx.String {
						return errSlowPath
					}
					e.Source.Snapshot, err = internedStr(d)
				default:
					return d.Skip()
				}
				return err
			})
		case "op":
			var err error
			e.Op, err = internedStr(d)
			return err
		case "ts_ms":
			var err error
			e.TsMs, err = d.Int64()
			return err
		case "unchanged":
			if d.Next() == jx.Null {
				return d.Null()
			}
			return d.Arr(func(d *jx.Decoder) error {
				s, err := d.Str()
				e.Unchanged = append(e.Unchanged, s)
				return err
			})
		case "payload", "schema":
			return errSlowPath
		default:
			return d.Skip()
		}
	})
	if err != nil {
		return nil, nil, errSlowPath
	}
	switch e.Op {
	case envelope.OpCreate, envelope.OpRead, envelope.OpUpdate:
		if e.After == nil && after == nil {
			return nil, nil, errSlowPath
		}
	case envelope.OpDelete:
		if e.Before == nil && before == nil {
			return nil, nil, errSlowPath
		}
	default:
		return nil, nil, errSlowPath
	}
	if e.Source.Table == "" {
		return nil, nil, errSlowPath
	}
	return before, after, nil
}

// decodeRow decodes a row image the way envelope.Decode does (json.Number
// for numbers); nested values (json, arrays) through encoding/json.
func decodeRow(raw []byte) (envelope.Row, error) {
	row := make(envelope.Row, 16)
	d := jx.DecodeBytes(raw)
	err := d.ObjBytes(func(d *jx.Decoder, key []byte) error {
		k := columnName(key)
		switch d.Next() {
		case jx.String:
			s, err := d.Str()
			if err != nil {
				return err
			}
			if s == envelope.DebeziumUnavailable {
				return errSlowPath
			}
			row[k] = s
		case jx.Number:
			n, err := d.Num()
			if err != nil {
				return err
			}
			row[k] = json.Number(n.String())
		case jx.Bool:
			b, err := d.Bool()
			if err != nil {
				return err
			}
			row[k] = b
		case jx.Null:
			row[k] = nil
			return d.Null()
		default:
			raw, err := d.Raw()
			if err != nil {
				return err
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return err
			}
			row[k] = v
		}
		return nil
	})
	return row, err
}
