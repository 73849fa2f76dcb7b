package capture

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/internal/envelope"
)

// pgoutput message builders (the wire format of protocol v2, outside streams).

type wcol struct {
	name string
	oid  uint32
	key  bool
}

func relationMsg(id uint32, schema, table string, cols ...wcol) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(append(b, schema...), 0)
	b = append(append(b, table...), 0)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		f := byte(0)
		if c.key {
			f = 1
		}
		b = append(b, f)
		b = append(append(b, c.name...), 0)
		b = binary.BigEndian.AppendUint32(b, c.oid)
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

// tuple values: nil = NULL, unchangedToast = 'u', else text.
var unchangedToast = &struct{}{}

func wireTuple(vals ...any) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		switch x := v.(type) {
		case nil:
			b = append(b, 'n')
		case string:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		default:
			b = append(b, 'u')
		}
	}
	return b
}

func insertMsg(rel uint32, vals ...any) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'I'}, rel)
	return append(append(b, 'N'), wireTuple(vals...)...)
}

func updateMsg(rel uint32, oldKind byte, old []any, vals ...any) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'U'}, rel)
	if old != nil {
		b = append(append(b, oldKind), wireTuple(old...)...)
	}
	return append(append(b, 'N'), wireTuple(vals...)...)
}

func deleteMsg(rel uint32, oldKind byte, old ...any) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'D'}, rel)
	return append(append(b, oldKind), wireTuple(old...)...)
}

func parse(t *testing.T, b []byte) pglogrepl.Message {
	t.Helper()
	m, err := pglogrepl.ParseV2(b, false)
	if err != nil {
		t.Fatalf("parse %q: %v", b[0], err)
	}
	return m
}

func parseRow(t *testing.T, b []byte) *RowChange {
	t.Helper()
	var ch RowChange
	ok, err := ParseRowChange(b, false, &ch)
	if !ok || err != nil {
		t.Fatalf("ParseRowChange(%q): %v %v", b[0], ok, err)
	}
	return &ch
}

var testTx = Tx{Xid: 777, CommitLSN: 0x16B3748, CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}

func newTestDecoder(t *testing.T, rel []byte) *Decoder {
	t.Helper()
	d := NewDecoder("shop", "db1", fakeResolver{})
	d.now = func() time.Time { return time.UnixMilli(1700000000000) }
	m := parse(t, rel).(*pglogrepl.RelationMessageV2)
	topic, err := d.Relation(context.Background(), &m.RelationMessage)
	if err != nil {
		t.Fatal(err)
	}
	if want := "shop." + m.Namespace + "." + m.RelationName; topic != want {
		t.Fatalf("topic = %s, want %s", topic, want)
	}
	return d
}

type fakeResolver struct{}

func (fakeResolver) ResolveType(_ context.Context, oid uint32) (TypeDesc, error) {
	switch oid {
	case 90001:
		return TypeDesc{Name: "order_status", Type: 'e'}, nil
	case 90002:
		return TypeDesc{Name: "pair", Type: 'c'}, nil
	case 90003:
		return TypeDesc{Name: "positive_money", Type: 'd', BaseOID: pgtype.NumericOID}, nil
	}
	return TypeDesc{Name: "mystery", Type: 'b'}, nil
}

var ordersRel = relationMsg(16400, "public", "orders",
	wcol{"id", pgtype.Int8OID, true}, wcol{"customer_id", pgtype.Int8OID, false}, wcol{"total", pgtype.NumericOID, false},
	wcol{"placed_at", pgtype.TimestamptzOID, false}, wcol{"paid", pgtype.BoolOID, false}, wcol{"notes", pgtype.TextOID, false},
	wcol{"meta", pgtype.JSONBOID, false}, wcol{"ship_date", pgtype.DateOID, false}, wcol{"tags", pgtype.TextArrayOID, false},
	wcol{"ref", pgtype.UUIDOID, false}, wcol{"status", 90001, false}, wcol{"amount", 90003, false})

func decodeOne(t *testing.T, d *Decoder, msg []byte) (*envelope.Event, Record) {
	t.Helper()
	recs := d.Change(parseRow(t, msg), testTx, nil)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if recs[0].Reason != "" {
		t.Fatalf("dead letter: %s: %s", recs[0].Reason, recs[0].Err)
	}
	e, err := envelope.Decode(recs[0].Value)
	if err != nil {
		t.Fatalf("envelope.Decode(%s): %v", recs[0].Value, err)
	}
	return e, recs[0]
}

func TestDecodeInsertAllTypes(t *testing.T) {
	d := newTestDecoder(t, ordersRel)
	e, rec := decodeOne(t, d, insertMsg(16400, "42", "7", "12.50", "2026-01-02 03:04:05.12+00", "t", "multi\nline \"quoted\" é",
		`{"a": [1, 2]}`, "2026-02-03", `{x,"y z",NULL}`, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "paid", "3.10"))
	if rec.Topic != "shop.public.orders" || string(rec.Key) != `{"id":42}` {
		t.Fatalf("topic/key = %s %s", rec.Topic, rec.Key)
	}
	if e.Op != envelope.OpCreate || e.Before != nil {
		t.Fatalf("op=%s before=%v", e.Op, e.Before)
	}
	s := e.Source
	if s.LSN != 0x16B3748 || s.TxID != 777 || s.TsMs != testTx.CommitTime.UnixMilli() || s.DB != "db1" || s.Schema != "public" ||
		s.Table != "orders" || s.Name != "shop" || s.Connector != "postgresql" || s.Snapshot != "false" || s.Version != envelope.Version {
		t.Fatalf("source = %+v", s)
	}
	if e.TsMs != 1700000000000 {
		t.Fatalf("ts_ms = %d", e.TsMs)
	}
	a := e.After
	if id, _, _ := a.Int("id"); id != 42 {
		t.Fatalf("id = %v", a["id"])
	}
	if v, _, _ := a.Decimal("total"); v != "12.50" {
		t.Fatalf("total = %v", a["total"])
	}
	if a["total"] != "12.50" {
		t.Fatalf("numeric must be a string, got %T", a["total"])
	}
	if a["placed_at"] != "2026-01-02T03:04:05.120000Z" {
		t.Fatalf("placed_at = %v", a["placed_at"])
	}
	if a["paid"] != true || a["notes"] != "multi\nline \"quoted\" é" || a["ship_date"] != "2026-02-03" {
		t.Fatalf("paid/notes/ship_date = %v %q %v", a["paid"], a["notes"], a["ship_date"])
	}
	meta, _ := json.Marshal(a["meta"])
	if string(meta) != `{"a":[1,2]}` {
		t.Fatalf("meta = %s", meta)
	}
	tags, _ := json.Marshal(a["tags"])
	if string(tags) != `["x","y z",null]` {
		t.Fatalf("tags = %s", tags)
	}
	if a["ref"] != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" || a["status"] != "paid" || a["amount"] != "3.10" {
		t.Fatalf("ref/status/amount = %v %v %v", a["ref"], a["status"], a["amount"])
	}
}

func TestDecodeUpdateDeleteToast(t *testing.T) {
	d := newTestDecoder(t, relationMsg(1, "public", "customers",
		wcol{"id", pgtype.Int8OID, true}, wcol{"name", pgtype.TextOID, false}, wcol{"bio", pgtype.TextOID, false}))

	// UPDATE without key change, bio TOASTed and unchanged.
	e, rec := decodeOne(t, d, updateMsg(1, 0, nil, "5", "Ada", unchangedToast))
	if e.Op != envelope.OpUpdate || string(rec.Key) != `{"id":5}` {
		t.Fatalf("op=%s key=%s", e.Op, rec.Key)
	}
	if _, present := e.After["bio"]; present {
		t.Fatal("unchanged TOAST column published as a value")
	}
	if len(e.Unchanged) != 1 || e.Unchanged[0] != "bio" || e.After["name"] != "Ada" {
		t.Fatalf("after=%v unchanged=%v", e.After, e.Unchanged)
	}
	if len(e.Before) != 1 || e.Before["id"] == nil {
		t.Fatalf("before = %v, want the key", e.Before)
	}

	// REPLICA IDENTITY FULL: the old row.
	e, _ = decodeOne(t, d, updateMsg(1, 'O', []any{"5", "Old", "x"}, "5", "Ada", "y"))
	if e.Before["name"] != "Old" || e.After["bio"] != "y" {
		t.Fatalf("before=%v after=%v", e.Before, e.After)
	}

	// DELETE with the key.
	e, rec = decodeOne(t, d, deleteMsg(1, 'K', "5", nil, nil))
	if e.Op != envelope.OpDelete || e.After != nil || string(rec.Key) != `{"id":5}` {
		t.Fatalf("delete: %+v key %s", e, rec.Key)
	}
	if len(e.Before) != 1 {
		t.Fatalf("delete before = %v, want only the key", e.Before)
	}

	// Primary key change: delete the old key, create the new one.
	recs := d.Change(parseRow(t, updateMsg(1, 'K', []any{"5", nil, nil}, "6", "Ada", "z")), testTx, nil)
	if len(recs) != 2 || string(recs[0].Key) != `{"id":5}` || string(recs[1].Key) != `{"id":6}` {
		t.Fatalf("key change: %+v", recs)
	}
	e0, _ := envelope.Decode(recs[0].Value)
	e1, _ := envelope.Decode(recs[1].Value)
	if e0.Op != envelope.OpDelete || e1.Op != envelope.OpCreate {
		t.Fatalf("key change ops %s %s", e0.Op, e1.Op)
	}
}

func TestDecodeSchemaChange(t *testing.T) {
	d := newTestDecoder(t, relationMsg(9, "public", "products", wcol{"id", pgtype.Int8OID, true}, wcol{"name", pgtype.TextOID, false}))
	e, _ := decodeOne(t, d, insertMsg(9, "1", "a"))
	if len(e.After) != 2 {
		t.Fatalf("after = %v", e.After)
	}
	// ADD COLUMN: a new Relation message, the next tuple has three columns.
	m := parse(t, relationMsg(9, "public", "products", wcol{"id", pgtype.Int8OID, true}, wcol{"name", pgtype.TextOID, false}, wcol{"weight", pgtype.Float8OID, false})).(*pglogrepl.RelationMessageV2)
	if _, err := d.Relation(context.Background(), &m.RelationMessage); err != nil {
		t.Fatal(err)
	}
	e, _ = decodeOne(t, d, insertMsg(9, "2", "b", "1.5"))
	if w, ok := e.After["weight"].(json.Number); !ok || w.String() != "1.5" {
		t.Fatalf("weight = %v", e.After["weight"])
	}
	// A tuple of the old shape is poison, not a crash.
	recs := d.Change(parseRow(t, insertMsg(9, "3", "c")), testTx, nil)
	if len(recs) != 1 || recs[0].Reason != ReasonShapeMismatch || recs[0].Topic != "shop.dlq" {
		t.Fatalf("shape mismatch: %+v", recs)
	}
}

func TestDecodePoison(t *testing.T) {
	d := newTestDecoder(t, relationMsg(3, "public", "weird",
		wcol{"id", pgtype.Int4OID, true}, wcol{"p", 90002, false}, wcol{"n", pgtype.Int4OID, false}))
	recs := d.Change(parseRow(t, insertMsg(3, "1", "(1,x)", "2")), testTx, nil)
	if len(recs) != 1 || recs[0].Topic != "shop.dlq" || recs[0].Reason != ReasonUnsupportedType {
		t.Fatalf("unsupported type: %+v", recs)
	}
	if !strings.Contains(recs[0].Err, "pair") {
		t.Fatalf("error does not name the type: %s", recs[0].Err)
	}
	var v map[string]any
	if err := json.Unmarshal(recs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	raw, _ := v["after_raw"].(map[string]any)
	if v["reason"] != ReasonUnsupportedType || v["table"] != "weird" || raw["p"] != "(1,x)" {
		t.Fatalf("dlq value = %s", recs[0].Value)
	}
	// A malformed value of a supported type.
	recs = d.Change(parseRow(t, insertMsg(3, "1", nil, "two")), testTx, nil)
	if len(recs) != 1 || recs[0].Reason != ReasonDecodeError {
		t.Fatalf("malformed int: %+v", recs)
	}
	// A relation never announced.
	recs = d.Change(parseRow(t, insertMsg(99, "1")), testTx, nil)
	if len(recs) != 1 || recs[0].Reason != ReasonUnknownRelation {
		t.Fatalf("unknown relation: %+v", recs)
	}
}

func TestFastTimestamp(t *testing.T) {
	for in, want := range map[string]string{
		"2026-01-02 03:04:05+00":        `"2026-01-02T03:04:05.000000Z"`,
		"2026-01-02 03:04:05.5+00":      `"2026-01-02T03:04:05.500000Z"`,
		"2026-01-02 03:04:05.123456+00": `"2026-01-02T03:04:05.123456Z"`,
	} {
		got, ok := fastTimestamp(nil, []byte(in), true)
		if !ok || string(got) != want {
			t.Errorf("%s -> %s %v, want %s", in, got, ok, want)
		}
	}
	if _, ok := fastTimestamp(nil, []byte("2026-01-02 03:04:05+02"), true); ok {
		t.Error("other zone taken by the fast path")
	}
	// The slow path through pgtype handles zones and infinity.
	d := newTestDecoder(t, relationMsg(4, "public", "t", wcol{"id", pgtype.Int4OID, true}, wcol{"ts", pgtype.TimestamptzOID, false}, wcol{"lt", pgtype.TimestampOID, false}))
	e, _ := decodeOne(t, d, insertMsg(4, "1", "2026-01-02 05:04:05.25+02", "2026-01-02 03:04:05"))
	if e.After["ts"] != "2026-01-02T03:04:05.250000Z" || e.After["lt"] != "2026-01-02T03:04:05.000000" {
		t.Fatalf("ts=%v lt=%v", e.After["ts"], e.After["lt"])
	}
	e, _ = decodeOne(t, d, insertMsg(4, "1", "infinity", nil))
	if e.After["ts"] != "infinity" || e.After["lt"] != nil {
		t.Fatalf("ts=%v lt=%v", e.After["ts"], e.After["lt"])
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", "q\"b\\", "ctl\x01\x1f", "\xff bad utf8", "emoji 😀", "line\u2028sep"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("%q round-trips to %q, want %q", s, back, wantBack)
		}
	}
}

func TestSpoolSubxactAbort(t *testing.T) {
	sp, err := newSpool(t.TempDir(), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sp.append(10, 1, []byte("a")))
	must(sp.append(11, 2, []byte("b"))) // savepoint 1
	must(sp.append(12, 3, []byte("c"))) // savepoint 2 inside it
	must(sp.append(10, 4, []byte("d")))
	must(sp.abortSubxact(11)) // rolls back b, c and d (d came after 11 started)
	must(sp.append(13, 5, []byte("e")))
	var got []string
	must(sp.replay(func(_ uint64, b []byte) error { got = append(got, string(b)); return nil }))
	if strings.Join(got, "") != "ae" {
		t.Fatalf("replay = %v, want [a e]", got)
	}
	if _, err := os.Stat(sp.f.Name()); !os.IsNotExist(err) {
		t.Fatalf("spool file still linked: %v", err)
	}
}
