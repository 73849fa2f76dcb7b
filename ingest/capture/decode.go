package capture

import (
	"context"
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/internal/envelope"
)

// kind is how a column's text value becomes JSON (see internal/envelope).
type kind uint8

const (
	kindUnsupported kind = iota
	kindInt              // int2, int4, int8, oid: JSON number as sent
	kindFloat            // float4, float8: JSON number; NaN/Infinity as strings
	kindNumeric          // numeric: exact decimal string
	kindString           // text, varchar, char, name, uuid, enum, time, interval, ...: JSON string
	kindBool             // bool: true/false
	kindJSON             // json, jsonb: the JSON value itself
	kindTimestampTZ      // timestamptz: RFC 3339 UTC with microseconds
	kindTimestamp        // timestamp: the same without "Z"
	kindDate             // date: YYYY-MM-DD
	kindBytea            // bytea: base64 string
	kindArray            // any array pgtype decodes: JSON array, elements by these rules
	kindText             // another type pgtype decodes (inet, point, tsvector, ...): its text as a JSON string
)

// TypeDesc describes a non-built-in type from pg_type.
type TypeDesc struct {
	Name     string
	Type     byte   // typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange
	BaseOID  uint32 // typbasetype for domains
	ElemOID  uint32 // typelem for arrays
	Category byte   // typcategory; 'A' for arrays
}

// TypeResolver looks up types pgx does not know (enums, domains, composites,
// extension types). A nil TypeResolver leaves them unsupported.
type TypeResolver interface {
	ResolveType(ctx context.Context, oid uint32) (TypeDesc, error)
}

// column is one column of a relation as capture encodes it.
type column struct {
	name     string
	nameJSON []byte // "name":
	oid      uint32
	key      bool
	kind     kind
	elemOID  uint32 // arrays: element type for time formatting
	typeName string
}

// relation is a published table's current shape.
type relation struct {
	id        uint32
	schema    string
	table     string
	topic     string
	cols      []column
	keyCols   []int
	srcPrefix []byte // `"source":{...,"table":"t","lsn":`
}

// Tx is the PostgreSQL transaction a change belongs to.
type Tx struct {
	Xid        uint32
	CommitLSN  pglogrepl.LSN // source.lsn and the "lsn" header
	CommitTime time.Time
}

// Record is one Kafka record capture produces. Key and Value are owned by the
// record (never reused).
type Record struct {
	Topic string
	Key   []byte
	Value []byte
	Table string
	Op    string
	// Reason is set on dead-letter records: unsupported_type, decode_error,
	// unknown_relation, shape_mismatch.
	Reason string
	Err    string
}

// Poison reasons (the reason label of orderflow_capture_dlq_total).
const (
	ReasonUnsupportedType = "unsupported_type"
	ReasonDecodeError     = "decode_error"
	ReasonUnknownRelation = "unknown_relation"
	ReasonShapeMismatch   = "shape_mismatch"
)

// Decoder turns pgoutput relation and row messages into Kafka records. It is
// pure except for the optional TypeResolver lookups on Relation messages.
type Decoder struct {
	prefix   string
	db       string
	dlqTopic string
	resolver TypeResolver
	m        *pgtype.Map
	rels     map[uint32]*relation
	types    map[uint32]TypeDesc
	buf      []byte
	now      func() time.Time
}

// NewDecoder returns a decoder for topics under prefix of database db.
func NewDecoder(prefix, db string, resolver TypeResolver) *Decoder {
	return &Decoder{
		prefix: prefix, db: db, dlqTopic: DLQTopic(prefix), resolver: resolver,
		m: pgtype.NewMap(), rels: map[uint32]*relation{}, types: map[uint32]TypeDesc{},
		buf: make([]byte, 0, 4096), now: time.Now,
	}
}

// DLQTopic is the dead-letter topic of a prefix.
func DLQTopic(prefix string) string { return prefix + ".dlq" }

// Topics returns the topics of every relation seen so far.
func (d *Decoder) Topics() []string {
	out := make([]string, 0, len(d.rels))
	for _, r := range d.rels {
		out = append(out, r.topic)
	}
	return out
}

// Relation records a table's shape (sent before its first change and after
// every schema change) and returns its topic.
func (d *Decoder) Relation(ctx context.Context, m *pglogrepl.RelationMessage) (string, error) {
	r := &relation{id: m.RelationID, schema: m.Namespace, table: m.RelationName,
		topic: envelope.Topic(d.prefix, m.Namespace, m.RelationName)}
	for i, c := range m.Columns {
		col := column{name: c.Name, oid: c.DataType, key: c.Flags&1 == 1}
		col.nameJSON = append(appendJSONString(nil, c.Name), ':')
		k, elem, name, err := d.classify(ctx, c.DataType, 0)
		if err != nil {
			return "", fmt.Errorf("resolve type %d of %s.%s.%s: %w", c.DataType, m.Namespace, m.RelationName, c.Name, err)
		}
		col.kind, col.elemOID, col.typeName = k, elem, name
		if col.key {
			r.keyCols = append(r.keyCols, i)
		}
		r.cols = append(r.cols, col)
	}
	p := []byte(`"source":{"version":`)
	p = appendJSONString(p, envelope.Version)
	p = append(p, `,"connector":"postgresql","name":`...)
	p = appendJSONString(p, d.prefix)
	p = append(p, `,"db":`...)
	p = appendJSONString(p, d.db)
	p = append(p, `,"schema":`...)
	p = appendJSONString(p, m.Namespace)
	p = append(p, `,"table":`...)
	p = appendJSONString(p, m.RelationName)
	p = append(p, `,"lsn":`...)
	r.srcPrefix = p
	d.rels[m.RelationID] = r
	return r.topic, nil
}

// classify maps a type OID to its encoding.
func (d *Decoder) classify(ctx context.Context, oid uint32, depth int) (kind, uint32, string, error) {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		return kindInt, 0, "", nil
	case pgtype.Float4OID, pgtype.Float8OID:
		return kindFloat, 0, "", nil
	case pgtype.NumericOID:
		return kindNumeric, 0, "", nil
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UUIDOID, pgtype.QCharOID,
		pgtype.TimeOID, pgtype.TimetzOID, pgtype.IntervalOID:
		return kindString, 0, "", nil
	case pgtype.BoolOID:
		return kindBool, 0, "", nil
	case pgtype.JSONOID, pgtype.JSONBOID:
		return kindJSON, 0, "", nil
	case pgtype.TimestamptzOID:
		return kindTimestampTZ, 0, "", nil
	case pgtype.TimestampOID:
		return kindTimestamp, 0, "", nil
	case pgtype.DateOID:
		return kindDate, 0, "", nil
	case pgtype.ByteaOID:
		return kindBytea, 0, "", nil
	}
	if t, ok := d.m.TypeForOID(oid); ok {
		if ac, isArray := t.Codec.(*pgtype.ArrayCodec); isArray {
			if ac.ElementType == nil {
				return kindUnsupported, 0, t.Name, nil
			}
			if k, _, _, _ := d.classify(ctx, ac.ElementType.OID, depth+1); k == kindUnsupported {
				return kindUnsupported, 0, t.Name, nil
			}
			return kindArray, ac.ElementType.OID, t.Name, nil
		}
		switch t.Codec.(type) {
		case pgtype.RecordCodec, *pgtype.CompositeCodec:
			return kindUnsupported, 0, t.Name, nil
		}
		return kindText, 0, t.Name, nil
	}
	if d.resolver == nil || depth > 4 {
		return kindUnsupported, 0, "", nil
	}
	td, ok := d.types[oid]
	if !ok {
		var err error
		td, err = d.resolver.ResolveType(ctx, oid)
		if err != nil {
			return kindUnsupported, 0, "", err
		}
		d.types[oid] = td
	}
	switch {
	case td.Type == 'e':
		return kindString, 0, td.Name, nil
	case td.Type == 'd' && td.BaseOID != 0:
		k, elem, _, err := d.classify(ctx, td.BaseOID, depth+1)
		return k, elem, td.Name, err
	case td.Category == 'A' && td.ElemOID != 0:
		// An array of an enum or domain: decode it as text[] and keep the
		// element strings (enums) or retype through the element.
		ek, _, _, err := d.classify(ctx, td.ElemOID, depth+1)
		if err != nil || ek == kindUnsupported {
			return kindUnsupported, 0, td.Name, err
		}
		if ek == kindString {
			return kindArray, pgtype.TextOID, td.Name, nil
		}
		return kindUnsupported, 0, td.Name, nil
	case td.Name == "citext":
		return kindString, 0, td.Name, nil
	}
	return kindUnsupported, 0, td.Name, nil
}

// poison is a change that cannot be encoded; it goes to the dead-letter topic.
type poison struct {
	reason string
	err    string
}

func (p *poison) Error() string { return p.reason + ": " + p.err }

// tupleColumn is one column of a row as pgoutput sent it: DataType 'n'
// (NULL), 'u' (unchanged TOAST), 't' (text) or 'b' (binary); Data points into
// the message.
type tupleColumn struct {
	DataType uint8
	Data     []byte
}

type tupleData struct{ Columns []tupleColumn }

// RowChange is a parsed Insert, Update or Delete message.
type RowChange struct {
	Rel      uint32
	Op       string
	Old      *tupleData // key columns ('K') or the whole old row ('O'); nil if not sent
	OldIsKey bool
	New      *tupleData

	oldBuf, newBuf tupleData
}

var errShort = errors.New("truncated pgoutput message")

// ParseRowChange parses an Insert ('I'), Update ('U') or Delete ('D')
// message of protocol v2 (inStream: it carries an xid) into ch without
// copying the column values, which keep pointing into data. It reports
// false for other message types.
func ParseRowChange(data []byte, inStream bool, ch *RowChange) (bool, error) {
	if len(data) == 0 {
		return false, errShort
	}
	typ := data[0]
	switch typ {
	case 'I', 'U', 'D':
	default:
		return false, nil
	}
	p := data[1:]
	if inStream {
		if len(p) < 4 {
			return true, errShort
		}
		p = p[4:]
	}
	if len(p) < 5 {
		return true, errShort
	}
	ch.Rel = binary.BigEndian.Uint32(p)
	p = p[4:]
	ch.Old, ch.New, ch.OldIsKey = nil, nil, false
	var err error
	switch typ {
	case 'I':
		ch.Op = envelope.OpCreate
		if p[0] != 'N' {
			return true, fmt.Errorf("insert: tuple type %q, want 'N'", p[0])
		}
		_, err = parseTuple(p[1:], &ch.newBuf)
		ch.New = &ch.newBuf
	case 'U':
		ch.Op = envelope.OpUpdate
		if p[0] == 'K' || p[0] == 'O' {
			ch.OldIsKey = p[0] == 'K'
			var n int
			if n, err = parseTuple(p[1:], &ch.oldBuf); err != nil {
				return true, err
			}
			ch.Old = &ch.oldBuf
			p = p[1+n:]
		}
		if len(p) == 0 || p[0] != 'N' {
			return true, errors.New("update: no new tuple")
		}
		_, err = parseTuple(p[1:], &ch.newBuf)
		ch.New = &ch.newBuf
	case 'D':
		ch.Op = envelope.OpDelete
		if p[0] != 'K' && p[0] != 'O' {
			return true, fmt.Errorf("delete: tuple type %q, want 'K' or 'O'", p[0])
		}
		ch.OldIsKey = p[0] == 'K'
		_, err = parseTuple(p[1:], &ch.oldBuf)
		ch.Old = &ch.oldBuf
	}
	return true, err
}

func parseTuple(p []byte, t *tupleData) (int, error) {
	if len(p) < 2 {
		return 0, errShort
	}
	n := int(binary.BigEndian.Uint16(p))
	off := 2
	if cap(t.Columns) < n {
		t.Columns = make([]tupleColumn, n)
	}
	t.Columns = t.Columns[:n]
	for i := 0; i < n; i++ {
		if off >= len(p) {
			return 0, errShort
		}
		c := &t.Columns[i]
		c.DataType, c.Data = p[off], nil
		off++
		switch c.DataType {
		case 't', 'b':
			if off+4 > len(p) {
				return 0, errShort
			}
			l := int(binary.BigEndian.Uint32(p[off:]))
			off += 4
			if l < 0 || off+l > len(p) {
				return 0, errShort
			}
			c.Data = p[off : off+l : off+l]
			off += l
		case 'n', 'u':
		default:
			return 0, fmt.Errorf("tuple column %d: unknown kind %q", i, c.DataType)
		}
	}
	return off, nil
}

// Change turns a row change into records: one, or a delete and a create when
// the update changed the primary key (as Debezium does). A change that cannot
// be encoded becomes one dead-letter record.
func (d *Decoder) Change(ch *RowChange, tx Tx, out []Record) []Record {
	relID, op, old, new, oldIsKey := ch.Rel, ch.Op, ch.Old, ch.New, ch.OldIsKey
	r := d.rels[relID]
	if r == nil {
		return append(out, d.dead(nil, relID, op, tx, old, new, &poison{ReasonUnknownRelation, fmt.Sprintf("no Relation message for relation id %d", relID)}))
	}
	nowMs := d.now().UnixMilli()
	if op == envelope.OpUpdate && old != nil && oldIsKey && len(r.keyCols) > 0 && keyChanged(r, old, new) {
		// The primary key changed: the old key is deleted, the new one created.
		del, err := d.encode(r, envelope.OpDelete, tx, old, true, nil, nowMs)
		if err != nil {
			return append(out, d.dead(r, relID, op, tx, old, new, err))
		}
		cre, err := d.encode(r, envelope.OpCreate, tx, nil, false, new, nowMs)
		if err != nil {
			return append(out, d.dead(r, relID, op, tx, old, new, err))
		}
		return append(out, del, cre)
	}
	rec, err := d.encode(r, op, tx, old, oldIsKey, new, nowMs)
	if err != nil {
		return append(out, d.dead(r, relID, op, tx, old, new, err))
	}
	return append(out, rec)
}

func keyChanged(r *relation, old, new *tupleData) bool {
	for _, i := range r.keyCols {
		if i >= len(old.Columns) || i >= len(new.Columns) {
			return true
		}
		o, n := old.Columns[i], new.Columns[i]
		if o.DataType != n.DataType || string(o.Data) != string(n.Data) {
			return true
		}
	}
	return false
}

// encode renders one change event (see internal/envelope for the layout).
func (d *Decoder) encode(r *relation, op string, tx Tx, old *tupleData, oldIsKey bool, new *tupleData, nowMs int64) (Record, error) {
	for _, t := range []*tupleData{old, new} {
		if t != nil && len(t.Columns) != len(r.cols) {
			return Record{}, &poison{ReasonShapeMismatch, fmt.Sprintf("tuple has %d columns, relation %s.%s has %d", len(t.Columns), r.schema, r.table, len(r.cols))}
		}
	}
	// Key: the primary-key columns, from the new row, else the old. Key and
	// value are built in one buffer and copied out in one allocation.
	b := d.buf[:0]
	if len(r.keyCols) > 0 {
		src := new
		if src == nil {
			src = old
		}
		b = append(b, '{')
		for n, i := range r.keyCols {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, r.cols[i].nameJSON...)
			var err error
			if b, err = d.appendValue(b, &r.cols[i], &src.Columns[i]); err != nil {
				return Record{}, err
			}
		}
		b = append(b, '}')
	}
	keyLen := len(b)
	b = append(b, `{"before":`...)
	var unchanged []int
	var err error
	switch {
	case old != nil && !oldIsKey:
		// REPLICA IDENTITY FULL: the whole old row.
		if b, _, err = d.appendRow(b, r, old, false); err != nil {
			return Record{}, err
		}
	case old != nil:
		// The key columns PostgreSQL sent.
		if b, err = d.appendKeyRow(b, r, old); err != nil {
			return Record{}, err
		}
	case op == envelope.OpUpdate && len(r.keyCols) > 0:
		// The key did not change: it is the new row's.
		if b, err = d.appendKeyRow(b, r, new); err != nil {
			return Record{}, err
		}
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"after":`...)
	if new != nil {
		if b, unchanged, err = d.appendRow(b, r, new, true); err != nil {
			return Record{}, err
		}
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ',')
	b = append(b, r.srcPrefix...)
	b = strconv.AppendUint(b, uint64(tx.CommitLSN), 10)
	b = append(b, `,"txId":`...)
	b = strconv.AppendUint(b, uint64(tx.Xid), 10)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, tx.CommitTime.UnixMilli(), 10)
	b = append(b, `,"snapshot":"false"},"op":"`...)
	b = append(b, op...)
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, nowMs, 10)
	if len(unchanged) > 0 {
		b = append(b, `,"unchanged":[`...)
		for n, i := range unchanged {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, r.cols[i].name)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	all := make([]byte, len(b))
	copy(all, b)
	d.buf = b
	var key []byte
	if keyLen > 0 {
		key = all[:keyLen:keyLen]
	}
	return Record{Topic: r.topic, Key: key, Value: all[keyLen:], Table: r.table, Op: op}, nil
}

// appendRow renders a tuple as a JSON object. Unchanged TOAST columns are left
// out and returned when allowed.
func (d *Decoder) appendRow(b []byte, r *relation, t *tupleData, allowUnchanged bool) ([]byte, []int, error) {
	var unchanged []int
	b = append(b, '{')
	first := true
	for i := range r.cols {
		c := &t.Columns[i]
		if c.DataType == pglogrepl.TupleDataTypeToast {
			if allowUnchanged {
				unchanged = append(unchanged, i)
			}
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, r.cols[i].nameJSON...)
		var err error
		if b, err = d.appendValue(b, &r.cols[i], c); err != nil {
			return b, nil, err
		}
	}
	return append(b, '}'), unchanged, nil
}

func (d *Decoder) appendKeyRow(b []byte, r *relation, t *tupleData) ([]byte, error) {
	b = append(b, '{')
	for n, i := range r.keyCols {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, r.cols[i].nameJSON...)
		var err error
		if b, err = d.appendValue(b, &r.cols[i], &t.Columns[i]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func decodeErr(c *column, format string, a ...any) error {
	return &poison{ReasonDecodeError, fmt.Sprintf("column %s: ", c.name) + fmt.Sprintf(format, a...)}
}

// appendValue renders one column value by the envelope's conventions.
func (d *Decoder) appendValue(b []byte, c *column, v *tupleColumn) ([]byte, error) {
	switch v.DataType {
	case pglogrepl.TupleDataTypeNull:
		return append(b, "null"...), nil
	case pglogrepl.TupleDataTypeText:
	case pglogrepl.TupleDataTypeToast:
		return b, decodeErr(c, "unchanged TOAST value where a value is required")
	default:
		return b, decodeErr(c, "unexpected tuple data type %q (binary mode is not used)", v.DataType)
	}
	s := v.Data
	switch c.kind {
	case kindInt:
		if !isInteger(s) {
			return b, decodeErr(c, "%q is not an integer", s)
		}
		return append(b, s...), nil
	case kindFloat:
		if _, err := strconv.ParseFloat(string(s), 64); err != nil || !isJSONNumber(s) {
			if string(s) == "NaN" || string(s) == "Infinity" || string(s) == "-Infinity" {
				return appendJSONStringBytes(b, s), nil
			}
			return b, decodeErr(c, "%q is not a float", s)
		}
		return append(b, s...), nil
	case kindNumeric:
		if !isDecimal(s) && string(s) != "NaN" && string(s) != "Infinity" && string(s) != "-Infinity" {
			return b, decodeErr(c, "%q is not a numeric", s)
		}
		return appendJSONStringBytes(b, s), nil
	case kindString:
		return appendJSONStringBytes(b, s), nil
	case kindBool:
		switch string(s) {
		case "t":
			return append(b, "true"...), nil
		case "f":
			return append(b, "false"...), nil
		}
		return b, decodeErr(c, "%q is not a boolean", s)
	case kindJSON:
		if !json.Valid(s) {
			return b, decodeErr(c, "invalid JSON")
		}
		return append(b, s...), nil
	case kindTimestampTZ:
		if out, ok := fastTimestamp(b, s, true); ok {
			return out, nil
		}
		return d.appendDecoded(b, c, c.oid, s)
	case kindTimestamp:
		if out, ok := fastTimestamp(b, s, false); ok {
			return out, nil
		}
		return d.appendDecoded(b, c, c.oid, s)
	case kindDate:
		if len(s) == 10 && s[4] == '-' && s[7] == '-' {
			return appendJSONStringBytes(b, s), nil
		}
		return d.appendDecoded(b, c, c.oid, s)
	case kindBytea, kindArray:
		return d.appendDecoded(b, c, c.oid, s)
	case kindText:
		// Check that pgx can decode it, publish PostgreSQL's text form.
		if _, err := d.decodeText(c.oid, s); err != nil {
			return b, decodeErr(c, "%v", err)
		}
		return appendJSONStringBytes(b, s), nil
	}
	name := c.typeName
	if name == "" {
		name = "oid " + strconv.FormatUint(uint64(c.oid), 10)
	}
	return b, &poison{ReasonUnsupportedType, fmt.Sprintf("column %s: type %s is not decoded by capture", c.name, name)}
}

func (d *Decoder) decodeText(oid uint32, s []byte) (any, error) {
	t, ok := d.m.TypeForOID(oid)
	if !ok {
		return nil, fmt.Errorf("type oid %d unknown to pgx", oid)
	}
	return t.Codec.DecodeValue(d.m, oid, pgtype.TextFormatCode, s)
}

// appendDecoded decodes through pgx's type map and renders the Go value.
func (d *Decoder) appendDecoded(b []byte, c *column, oid uint32, s []byte) ([]byte, error) {
	if c.kind == kindArray && c.elemOID == pgtype.TextOID && oid != pgtype.TextArrayOID {
		oid = pgtype.TextArrayOID // arrays of enums
	}
	v, err := d.decodeText(oid, s)
	if err != nil {
		return b, decodeErr(c, "%v", err)
	}
	elem := c.oid
	if c.kind == kindArray {
		elem = c.elemOID
	}
	out, err := appendGo(b, v, elem)
	if err != nil {
		return b, decodeErr(c, "%v", err)
	}
	return out, nil
}

// appendGo renders a value pgtype decoded; elemOID decides how times render.
func appendGo(b []byte, v any, elemOID uint32) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case float32:
		return appendFloat(b, float64(x), 32), nil
	case float64:
		return appendFloat(b, x, 64), nil
	case []byte:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, x)
		return append(b, '"'), nil
	case [16]byte:
		u := pgtype.UUID{Bytes: x, Valid: true}
		s, _ := u.Value()
		return appendJSONString(b, s.(string)), nil
	case time.Time:
		switch elemOID {
		case pgtype.DateOID:
			return appendJSONString(b, x.Format("2006-01-02")), nil
		case pgtype.TimestampOID:
			return appendJSONString(b, x.UTC().Format("2006-01-02T15:04:05.000000")), nil
		}
		return appendJSONString(b, envelope.FormatTime(x)), nil
	case pgtype.InfinityModifier:
		if x > 0 {
			return appendJSONString(b, "infinity"), nil
		}
		return appendJSONString(b, "-infinity"), nil
	case pgtype.Numeric:
		if x.InfinityModifier != pgtype.Finite {
			return appendJSONString(b, map[bool]string{true: "Infinity", false: "-Infinity"}[x.InfinityModifier > 0]), nil
		}
		if x.NaN {
			return appendJSONString(b, "NaN"), nil
		}
		s, err := x.Value()
		if err != nil {
			return b, err
		}
		if s == nil {
			return append(b, "null"...), nil
		}
		return appendJSONString(b, s.(string)), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendGo(b, e, elemOID); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		j, err := json.Marshal(x)
		if err != nil {
			return b, err
		}
		return append(b, j...), nil
	case netip.Prefix:
		return appendJSONString(b, x.String()), nil
	case netip.Addr:
		return appendJSONString(b, x.String()), nil
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return b, err
		}
		return appendGo(b, dv, elemOID)
	case fmt.Stringer:
		return appendJSONString(b, x.String()), nil
	}
	return b, fmt.Errorf("value of Go type %T has no JSON rendering", v)
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return appendJSONString(b, "NaN")
	case math.IsInf(f, 1):
		return appendJSONString(b, "Infinity")
	case math.IsInf(f, -1):
		return appendJSONString(b, "-Infinity")
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// fastTimestamp converts PostgreSQL's ISO output in UTC
// ("2026-01-02 03:04:05.123+00") without parsing; ok is false for anything
// else (other zones, BC, infinity, years past 9999).
func fastTimestamp(b, s []byte, tz bool) ([]byte, bool) {
	n := len(s)
	if tz {
		if n < 22 || s[n-3] != '+' || s[n-2] != '0' || s[n-1] != '0' {
			return b, false
		}
		n -= 3
	}
	if n < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return b, false
	}
	frac := s[19:n]
	if len(frac) > 0 && (frac[0] != '.' || len(frac) > 7) {
		return b, false
	}
	b = append(b, '"')
	b = append(b, s[:10]...)
	b = append(b, 'T')
	b = append(b, s[11:19]...)
	b = append(b, '.')
	if len(frac) > 0 {
		b = append(b, frac[1:]...)
	}
	for i := max(len(frac)-1, 0); i < 6; i++ {
		b = append(b, '0')
	}
	if tz {
		b = append(b, 'Z')
	}
	return append(b, '"'), true
}

func isInteger(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isDecimal(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	digits, dot := 0, false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// isJSONNumber reports whether PostgreSQL's float text is also a JSON number.
func isJSONNumber(s []byte) bool {
	return json.Valid(s) && len(s) > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
}

// dead renders a change that cannot be encoded as a dead-letter record: the
// reason, the error, where it came from and the raw text of every column.
func (d *Decoder) dead(r *relation, relID uint32, op string, tx Tx, old, new *tupleData, err error) Record {
	reason, msg := ReasonDecodeError, err.Error()
	var p *poison
	if errors.As(err, &p) {
		reason, msg = p.reason, p.err
	}
	b := append(d.buf[:0], `{"reason":`...)
	b = appendJSONString(b, reason)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, msg)
	table, schema := "", ""
	if r != nil {
		table, schema = r.table, r.schema
	}
	b = append(b, `,"relation_id":`...)
	b = strconv.AppendUint(b, uint64(relID), 10)
	b = append(b, `,"schema":`...)
	b = appendJSONString(b, schema)
	b = append(b, `,"table":`...)
	b = appendJSONString(b, table)
	b = append(b, `,"op":`...)
	b = appendJSONString(b, op)
	b = append(b, `,"lsn":`...)
	b = strconv.AppendUint(b, uint64(tx.CommitLSN), 10)
	b = append(b, `,"txId":`...)
	b = strconv.AppendUint(b, uint64(tx.Xid), 10)
	b = append(b, `,"commit_ts_ms":`...)
	b = strconv.AppendInt(b, tx.CommitTime.UnixMilli(), 10)
	for _, part := range []struct {
		name string
		t    *tupleData
	}{{"before_raw", old}, {"after_raw", new}} {
		b = append(b, ',')
		b = appendJSONString(b, part.name)
		b = append(b, ':')
		if part.t == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '{')
		for i, c := range part.t.Columns {
			if i > 0 {
				b = append(b, ',')
			}
			name := "col" + strconv.Itoa(i)
			if r != nil && i < len(r.cols) {
				name = r.cols[i].name
			}
			b = appendJSONString(b, name)
			b = append(b, ':')
			switch c.DataType {
			case pglogrepl.TupleDataTypeText:
				b = appendJSONStringBytes(b, c.Data)
			case pglogrepl.TupleDataTypeBinary:
				b = append(b, '"')
				b = base64.StdEncoding.AppendEncode(b, c.Data)
				b = append(b, '"')
			case pglogrepl.TupleDataTypeToast:
				b = append(b, `"(unchanged toast)"`...)
			default:
				b = append(b, "null"...)
			}
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	val := append(make([]byte, 0, len(b)), b...)
	d.buf = b
	var key []byte
	if table != "" {
		key = []byte(schema + "." + table)
	}
	return Record{Topic: d.dlqTopic, Key: key, Value: val, Table: table, Op: op, Reason: reason, Err: msg}
}

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendJSONStringBytes(b, s []byte) []byte {
	// Fast path: nothing to escape.
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return appendJSONString(b, string(s))
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
