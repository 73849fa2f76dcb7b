package envelope

import (
	"errors"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	e := &Event{
		After:  Row{"id": 7, "name": "Ada", "total": "12.50", "placed_at": "2026-01-02T03:04:05.123456Z"},
		Source: Source{Version: Version, Connector: "postgresql", Name: "orderflow", DB: "shop", Schema: "public", Table: "orders", LSN: 12345, TxID: 99, TsMs: 1700000000000, Snapshot: "false"},
		Op:     OpCreate, TsMs: 1700000000001,
	}
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source.LSN != 12345 || got.Source.TxID != 99 || got.Op != OpCreate {
		t.Fatalf("source/op lost: %+v", got)
	}
	id, ok, err := got.After.Int("id")
	if err != nil || !ok || id != 7 {
		t.Fatalf("id = %d %v %v", id, ok, err)
	}
	dec, _, _ := got.After.Decimal("total")
	if dec != "12.50" {
		t.Fatalf("total = %q, want exact 12.50", dec)
	}
	ts, _, err := got.After.Time("placed_at")
	if err != nil || !ts.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Fatalf("placed_at = %v %v", ts, err)
	}
}

func TestDecodeDebezium(t *testing.T) {
	// Debezium with the schema wrapper, integer micro timestamps, days-since-epoch
	// dates and the TOAST placeholder.
	v := `{"schema":{"type":"struct"},"payload":{"before":null,"after":{"id":1,"bio":"__debezium_unavailable_value","created_at":1700000000123456,"birthday":19000},"source":{"connector":"postgresql","db":"shop","schema":"public","table":"customers","lsn":555,"txId":7,"ts_ms":1700000000000,"snapshot":"false"},"op":"u","ts_ms":1}}`
	e, err := Decode([]byte(v))
	if err != nil {
		t.Fatal(err)
	}
	if _, present := e.After["bio"]; present {
		t.Fatal("placeholder kept as a value")
	}
	if len(e.Unchanged) != 1 || e.Unchanged[0] != "bio" {
		t.Fatalf("unchanged = %v, want [bio]", e.Unchanged)
	}
	ts, _, _ := e.After.Time("created_at")
	if ts.UnixMicro() != 1700000000123456 {
		t.Fatalf("created_at = %v", ts)
	}
	d, _, _ := e.After.Date("birthday")
	if d.Format("2006-01-02") != "2022-01-08" {
		t.Fatalf("birthday = %v", d)
	}
}

func TestDecodePoisonAndTombstone(t *testing.T) {
	for name, v := range map[string]string{
		"not json":      `{"op":`,
		"unknown op":    `{"op":"x","after":{},"source":{"table":"t"}}`,
		"create no row": `{"op":"c","source":{"table":"t"}}`,
		"delete no row": `{"op":"d","source":{"table":"t"}}`,
		"no table":      `{"op":"c","after":{"id":1},"source":{}}`,
	} {
		if _, err := Decode([]byte(v)); !errors.Is(err, ErrPoison) {
			t.Errorf("%s: err = %v, want ErrPoison", name, err)
		}
	}
	if e, err := Decode(nil); e != nil || err != nil {
		t.Fatalf("tombstone: %v %v", e, err)
	}
}
