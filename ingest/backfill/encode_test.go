package backfill

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/orderflow/orderflow/internal/envelope"
)

func TestCopyParserUnescapes(t *testing.T) {
	var got [][]string
	p := newCopyParser(3, func(td *pglogrepl.TupleData) error {
		var row []string
		for _, c := range td.Columns {
			if c.DataType == pglogrepl.TupleDataTypeNull {
				row = append(row, "<NULL>")
			} else {
				row = append(row, string(c.Data))
			}
		}
		got = append(got, row)
		return nil
	})
	in := "1\ta\\tb\\\\c\\nd\t\\N\n2\t\\x41\\101z\tx\n"
	// Feed in awkward pieces: rows split across writes.
	for _, piece := range []string{in[:3], in[3:11], in[11:]} {
		if _, err := p.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.finish(); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"1", "a\tb\\c\nd", "<NULL>"}, {"2", "AAz", "x"}}
	if len(got) != 2 || strings.Join(got[0], "|") != strings.Join(want[0], "|") || strings.Join(got[1], "|") != strings.Join(want[1], "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := p.Write([]byte("3\tonly two\n")); err == nil {
		t.Fatal("short row accepted")
	}
}

func TestRowEncoderMatchesEnvelope(t *testing.T) {
	tm := &tableMeta{name: "orders", key: "id", cols: []*pglogrepl.RelationMessageColumn{
		{Name: "id", DataType: 20}, {Name: "status", DataType: 25}, {Name: "total", DataType: 1700},
		{Name: "placed_at", DataType: 1184}, {Name: "paid_at", DataType: 1184}, {Name: "ok", DataType: 16}, {Name: "country", DataType: 1042},
	}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newRowEncoder("of", "db", "public", tm, 12345, at)
	col := func(s string) *pglogrepl.TupleDataColumn {
		if s == "\\N" {
			return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeNull}
		}
		return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Data: []byte(s)}
	}
	td := &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{col("42"), col(`pa"id`), col("12.50"), col("2025-03-04 05:06:07.5+00"), col("\\N"), col("t"), col("DE")}}
	k, v, end := e.encode(td, 99)
	if string(k) != `{"id":42}` {
		t.Errorf("key %s", k)
	}
	// the image is the envelope's "after", byte for byte
	var img struct {
		After json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(v, &img); err != nil || string(v[imageAt:end]) != string(img.After) {
		t.Errorf("image %s, want %s (%v)", v[imageAt:end], img.After, err)
	}
	ev, err := envelope.Decode(v)
	if err != nil {
		t.Fatalf("%s: %v", v, err)
	}
	if ev.Op != envelope.OpRead || ev.Source.Snapshot != "true" || ev.Source.LSN != 12345 || ev.Source.Table != "orders" || ev.Before != nil {
		t.Errorf("envelope %+v", ev)
	}
	if s, _, _ := ev.After.String("status"); s != `pa"id` {
		t.Errorf("status %q", s)
	}
	if d, _, _ := ev.After.Decimal("total"); d != "12.50" {
		t.Errorf("total %q", d)
	}
	if ts, _, _ := ev.After.Time("placed_at"); !ts.Equal(time.Date(2025, 3, 4, 5, 6, 7, 500000000, time.UTC)) {
		t.Errorf("placed_at %v", ts)
	}
	if !strings.Contains(string(v), `"placed_at":"2025-03-04T05:06:07.500000Z"`) || !strings.Contains(string(v), `"paid_at":null`) || !strings.Contains(string(v), `"ok":true`) {
		t.Errorf("value %s", v)
	}
}

func TestTimestampText(t *testing.T) {
	for in, want := range map[string]string{
		"2025-01-01 00:00:00+00":        `"2025-01-01T00:00:00.000000Z"`,
		"2025-01-01 00:00:00.123456+00": `"2025-01-01T00:00:00.123456Z"`,
		"2025-01-01 02:00:00+02":        `"2025-01-01T00:00:00.000000Z"`,
		"2025-01-01 02:00:00.25+05:30":  `"2024-12-31T20:30:00.250000Z"`,
		"infinity":                      `"infinity"`,
	} {
		b := (&rowEncoder{}).appendValue(nil, kTimestampTZ, &pglogrepl.TupleDataColumn{DataType: 't', Data: []byte(in)})
		if string(b) != want {
			t.Errorf("%s: got %s, want %s", in, b, want)
		}
	}
}

func TestUnitChunks(t *testing.T) {
	u := unit{Min: 1, Max: 250}
	c := u.chunks(100)
	if len(c) != 3 || c[0] != [2]int64{1, 100} || c[2] != [2]int64{201, 250} {
		t.Errorf("chunks %v", c)
	}
	if len((unit{Min: 0, Max: -1}).chunks(10)) != 0 {
		t.Error("empty table has chunks")
	}
}
