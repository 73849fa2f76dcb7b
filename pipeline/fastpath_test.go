package pipeline

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/envelope"
)

// The fast paths below must give exactly what the general code gives; these
// tests compare them with the code they short-cut.

// fnvEventHash is the original change_log event_id computation.
func fnvEventHash(table, key, op string, lsn uint64, before, after string) uint64 {
	h := fnv.New64a()
	var l [9]byte
	binary.BigEndian.PutUint64(l[:8], lsn)
	for _, s := range []string{table, key, op, string(l[:]), before, after} {
		_, _ = io.WriteString(h, s)
		_, _ = h.Write(l[8:])
	}
	return h.Sum64()
}

func TestEventHashSameAsFNV(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	cases := [][5]string{{"", "", "", "", ""}, {"orders", `{"id":1}`, "c", "", `{"id":1,"x":"y"}`}}
	for i := 0; i < 2000; i++ {
		cases = append(cases, [5]string{str(), str(), str(), str(), str()})
	}
	for i, c := range cases {
		lsn := r.Uint64()
		if i == 0 {
			lsn = 0
		}
		if got, want := eventHash(c[0], c[1], c[2], lsn, []byte(c[3]), []byte(c[4])), fnvEventHash(c[0], c[1], c[2], lsn, c[3], c[4]); got != want {
			t.Fatalf("%q lsn %d: %x, want %x", c, lsn, got, want)
		}
	}
}

func TestParseTimeFastSameAsParse(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := []string{
		"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05.123456789Z",
		"1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00.000000Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z", "2026-01-02T24:00:00Z", "2026-01-02T23:60:00Z", "2026-01-02T23:59:60Z", "2026-01-02T03:04:05.Z",
		"2026-01-02T03:04:05.1234567890Z", "2026-01-02t03:04:05Z", "2026-01-02T03:04:05z", "2026-01-02 03:04:05Z",
		"2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05", "+026-01-02T03:04:05Z", "2026-1-02T03:04:05Z", "2026-01-02T03:04:5Z",
		"2026-01-02T03:04:05,123Z", "2026-01-02T03:04:05.12a4Z", "2026-01-02", "", "Z", "2026-01-02T03:04:05.000000Z",
		"0000-01-01T00:00:00Z", "0000-02-29T23:59:59Z", "0000-03-01T00:00:00Z", "0400-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T12:00:00Z",
		"2100-02-29T00:00:00Z", "1600-12-31T23:59:59.999999Z",
	}
	for y := 0; y <= 9999; y += 7 {
		for m := 1; m <= 12; m++ {
			in = append(in, fmt.Sprintf("%04d-%02d-01T00:00:00Z", y, m), fmt.Sprintf("%04d-%02d-%02dT23:59:59Z", y, m, 28+y%4))
		}
	}
	for i := 0; i < 5000; i++ {
		ts := time.Unix(r.Int64N(400*365*86400)-200*365*86400, r.Int64N(1e9)).UTC()
		in = append(in, ts.Format("2006-01-02T15:04:05.000000Z"), ts.Format(time.RFC3339Nano), ts.Format(time.RFC3339))
	}
	for _, s := range in {
		got, ok := parseTimeFast([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok && (err != nil || got != Micros(want.UnixMicro())) {
			t.Errorf("%q: fast %d, want %d (%v)", s, got, want.UnixMicro(), err)
		}
		if !ok && len(s) == 27 && err == nil {
			t.Errorf("%q: capture's form not on the fast path", s)
		}
	}
}

func TestParseMoneyFastSameAsParseMoney(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	in := []string{"0", "-0", "0.00", "-0.00", "12", "12.5", "12.50", "12.05", "-12.5", "007.50", "12.", ".5", "-.5", "1.234",
		"1.230", "+1.00", "1e3", " 1.00", "1.00 ", "", "-", "--1", "999999999999999.99", "9999999999999999", "1.2.3", "١٢"}
	for i := 0; i < 5000; i++ {
		n := r.Int64N(1e12) - 5e11
		in = append(in, Money(n).String(), strconv.FormatInt(n, 10), strconv.FormatFloat(float64(n)/10, 'f', -1, 64))
	}
	for _, s := range in {
		got, ok := parseMoneyFast([]byte(s))
		if !ok {
			continue
		}
		want, err := ParseMoney(s)
		if _, ferr := strconv.ParseFloat(s, 64); err != nil || ferr != nil || got != want {
			t.Errorf("%q: fast %v, want %v (%v, %v)", s, got, want, err, ferr)
		}
	}
	for _, s := range []string{"12.50", "-3.1", "0"} {
		if _, ok := parseMoneyFast([]byte(s)); !ok {
			t.Errorf("%q is not on the fast path", s)
		}
	}
}

func TestRawIDFirstKey(t *testing.T) {
	for _, c := range []struct {
		img string
		id  int64
		ok  bool
	}{
		{`{"id":7,"x":1}`, 7, true},
		{`{"a":"b","id":"8"}`, 8, true},
		{`{"id":null,"id":9}`, 9, true},
		{`{"id":1,"id":2}`, 1, true},
		{`{"id":true}`, 0, false},
		{`{"id":"__debezium_unavailable_value","id":3}`, 0, false},
		{`{"x":1}`, 0, false},
		{`{"id":"12","id":null}`, 12, true},
		{`{"name":"a","id":5,"quantity":"x"}`, 5, true},
	} {
		id, ok := rawID([]byte(c.img))
		if id != c.id || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.img, id, ok, c.id, c.ok)
		}
		// decoding ahead takes the key from the parsed image when that is
		// what rawID reads, for every table
		for _, table := range CapturedTables {
			d := &decoded{ev: &envelope.Event{Op: envelope.OpUpdate}, after: []byte(c.img)}
			d.prepare(table, nil, false)
			if d.id != c.id || d.idOK != c.ok {
				t.Errorf("%s %s decoded ahead: %d %v, want %d %v", table, c.img, d.id, d.idOK, c.id, c.ok)
			}
		}
	}
}
