package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
)

// The envelope scanner and the images' flat path (scan.go) must give
// exactly what the general decoders give: the same event, images, key,
// parsed fields, change_log text, errors and poison reasons. These tests
// compare them on valid records and on every truncation and one-byte
// mutation of them.

// jxDecode is decodeEventLazyInto before the scanner: jx's one pass, then
// envelope.Decode.
func jxDecode(value []byte) (*envelope.Event, []byte, []byte, error) {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil, nil, nil, nil
	}
	e := new(envelope.Event)
	before, after, err := decodeFastInto(e, value, false)
	if err == nil {
		return e, before, after, nil
	}
	ev, err := envelope.Decode(value)
	return ev, nil, nil, err
}

// scanCorpus: records as capture, backfill and the benchmarks write them,
// and some that are valid JSON but not the scanner's layout.
func scanCorpus() []string {
	src := func(table, op string, extra string) string {
		return `"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"shop","schema":"public","table":"` + table +
			`","lsn":123456789012,"txId":4711,"ts_ms":1767323045123,"snapshot":"false"},"op":"` + op + `","ts_ms":1767323045200` + extra + `}`
	}
	var out []string
	for _, r := range [][3]string{
		{TCustomers, "c", `{"id":1,"name":"Ann \"A\" Smith","email":"a@x.io","phone":null,"segment":"gold","region":"europe","country":"DE","city":"Köln","created_at":"2026-01-02T03:04:05.123456Z","updated_at":"2026-01-02T03:04:05.123456Z"}`},
		{TCustomers, "u", `{"id":2,"segment":"__debezium_unavailable_value","name":"B\u00e9","email":"b@x.io","phone":"+49 1","region":null,"city":"","created_at":1767323045123456,"updated_at":"2026-01-02 03:04:05"}`},
		{TProducts, "c", `{"id":3,"sku":"S-1","name":"Book","category":"books","price":"12.5","currency":"EUR","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05.1Z"}`},
		{TProducts, "u", `{"id":4,"sku":"S-2","name":"Pen","category":"office","price":7,"currency":null,"created_at":null,"updated_at":"2026-01-02"}`},
		{TCampaigns, "c", `{"id":5,"code":"SPRING","name":"Spring","starts_at":"2026-03-01T00:00:00Z","ends_at":"2026-04-01T00:00:00Z","discount_percent":"15.00","created_at":"2026-01-02T03:04:05.000000Z","updated_at":"2026-01-02T03:04:05.000000Z"}`},
		{TOrders, "c", `{"id":6,"customer_id":9,"campaign_id":null,"status":"placed","currency":"EUR","subtotal":"30.00","discount":"0.00","total":"30.00","placed_at":"2026-01-02T03:04:05.123456Z","paid_at":null,"shipped_at":null,"delivered_at":null,"cancelled_at":null,"refunded_at":null,"created_at":"2026-01-02T03:04:05.123456Z","updated_at":"2026-01-02T03:04:05.123456Z"}`},
		{TOrders, "u", `{"id":"7","customer_id":-9,"campaign_id":11,"status":"paid","currency":"EUR","subtotal":30,"discount":"1e1","total":"-0.5","placed_at":"2026-01-02T03:04:05Z","paid_at":"2026-01-03T00:00:00+01:00","j":{"a":[1,2.5e-3,{"b":"c"}],"t":true,"f":false}}`},
		{TOrderItems, "c", `{"id":8,"order_id":6,"line_no":1,"product_id":3,"quantity":4,"unit_price":"2.50","discount":"0.10","created_at":"2026-01-02T03:04:05.123456Z","updated_at":"2026-01-02T03:04:05.123456Z"}`},
		{TOrderItems, "u", `{"id":9,"id":10,"order_id":6.0,"line_no":"2","product_id":true,"quantity":null}`},
		{TOrderItems, "c", `{}`},
	} {
		out = append(out, `{"before":null,"after":`+r[2]+`,`+src(r[0], r[1], ""))
		out = append(out, `{"before":{"id":1},"after":`+r[2]+`,`+src(r[0], "u", `,"unchanged":["name","email"]`))
		out = append(out, `{"before":`+r[2]+`,"after":null,`+src(r[0], "d", `,"unchanged":[]`))
	}
	// json.Marshal of envelope.Event (the benchmarks' records)
	out = append(out, string(benchValue("of", TOrders, "c", 77, 1767323045123, order(6, 9, "paid"))),
		string(benchValue("of", TOrderItems, "u", 78, 1767323045123, item(8, 6, 3, 2, "9.99"))))
	// not the scanner's layout: the general decoders decide
	out = append(out,
		`{"before":null,"after":{"id":1},"source":{"table":"orders","lsn":5,"ts_ms":1},"op":"c","ts_ms":2}`,
		`{"schema":{},"payload":{"before":null,"after":{"id":1},"source":{"table":"customers","lsn":5},"op":"r"}}`,
		`{"before":null,"after":{"id":1,"name":"__debezium_unavailable_value"},"source":{"version":"2.7","connector":"postgresql","name":"dbz","ts_ms":1,"snapshot":"false","db":"d","sequence":"[null,\"1\"]","schema":"public","table":"customers","txId":7,"lsn":5,"xmin":null},"op":"u","ts_ms":2,"transaction":null}`,
		` {"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2} `,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2}{}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"p\u0075blic","table":"orders","lsn":5,"txId":-1,"ts_ms":-0,"snapshot":true},"op":"c","ts_ms":2}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":18446744073709551615,"txId":9223372036854775807,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":99999999999999999999,"txId":-9999999999999999999,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"x","ts_ms":2}`,
		`{"before":null,"after":null,"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"d","ts_ms":2}`,
		`{"before":null,"after":{"id":1},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2,"unchanged":null}`,
		`{"before":null,"after":{"id":1,"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":5,"txId":1,"ts_ms":1,"snapshot":"false"},"op":"c","ts_ms":2}`,
	)
	return out
}

// mutations returns v, every truncation of it, and v with one byte
// replaced, removed or inserted at every position.
func mutations(v string) []string {
	out := []string{v}
	subst := []byte{'"', '\\', ' ', '{', '}', ',', ':', '0', '-', '.', 'n', 0x01}
	for i := 0; i <= len(v); i++ {
		out = append(out, v[:i])
		if i == len(v) {
			break
		}
		out = append(out, v[:i]+v[i+1:])
		for _, c := range subst {
			if c != v[i] {
				out = append(out, v[:i]+string([]byte{c})+v[i+1:])
			}
		}
		out = append(out, v[:i]+"\""+v[i:], v[:i]+" "+v[i:])
	}
	return out
}

func sameErr(a, b error) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	ra, pa := IsPoison(a)
	rb, pb := IsPoison(b)
	return a.Error() == b.Error() && ra == rb && pa == pb
}

func TestScanEnvelopeSameAsDecoder(t *testing.T) {
	var c envInterner
	onPath, cases := 0, 0
	for _, base := range scanCorpus() {
		for _, v := range mutations(base) {
			cases++
			var into envelope.Event
			if _, _, ok := scanEnvelope(&into, []byte(v), &c); ok {
				onPath++
			}
			into = envelope.Event{}
			got, gb, ga, gerr := decodeEventScan([]byte(v), &into, &c)
			want, wb, wa, werr := jxDecode([]byte(v))
			if !reflect.DeepEqual(got, want) || !bytes.Equal(gb, wb) || !bytes.Equal(ga, wa) || (gb == nil) != (wb == nil) || (ga == nil) != (wa == nil) || !sameErr(gerr, werr) {
				t.Fatalf("%q:\n got %+v %q %q %v\nwant %+v %q %q %v", v, got, gb, ga, gerr, want, wb, wa, werr)
			}
		}
	}
	t.Logf("%d records, %d on the scanner's path", cases, onPath)
	// the layouts capture, backfill and the benchmarks write are on it
	for _, v := range scanCorpus()[:32] {
		var into envelope.Event
		if _, _, ok := scanEnvelope(&into, []byte(v), &c); !ok {
			t.Errorf("not on the scanner's path: %s", v)
		}
	}
}

// TestScanImagesSameAsJx: decoding ahead (envelope, key, image parsed for
// its table, change_log text) with the scanner gives what jx gives, for
// every table and every mutation of the corpus.
func TestScanImagesSameAsJx(t *testing.T) {
	defer func() { scanImages = true }()
	prev := struct {
		c Customer
		p Product
		k Campaign
		o Order
		i Item
	}{Customer{Name: "old", Phone: NullString{S: "1", Valid: true}}, Product{Name: "old", Price: 5}, Campaign{Code: "OLD"}, newOrder(), Item{Quantity: 1}}
	n := 0
	for bi, base := range scanCorpus() {
		for mi, v := range mutations(base) {
			if mi%3 != 0 {
				continue // every third: TestScanEnvelopeSameAsDecoder has them all
			}
			// every table for the records as written; mutations with the
			// record's table and one other
			tables := CapturedTables
			if mi > 0 {
				tables = []string{CapturedTables[bi/3%len(CapturedTables)], CapturedTables[(bi/3+mi)%len(CapturedTables)]}
			}
			for _, table := range tables {
				rec := []*kgo.Record{{Topic: "t", Key: []byte(`{"id":1}`), Value: []byte(v)}}
				scanImages = true
				got := make([]decoded, 1)
				decodeRange(rec, got, map[string]string{"t": table}, true)
				scanImages = false
				want := make([]decoded, 1)
				want[0].ev, want[0].before, want[0].after, want[0].err = jxDecode([]byte(v))
				if want[0].err == nil && want[0].ev != nil {
					want[0].prepare(table, rec[0].Key, true)
				}
				g, w := &got[0], &want[0]
				if g.err != nil || w.err != nil || g.ev == nil || w.ev == nil {
					if !sameErr(g.err, w.err) || (g.ev == nil) != (w.ev == nil) {
						t.Fatalf("%s %q: %v, want %v", table, v, g.err, w.err)
					}
					continue
				}
				n++
				if !reflect.DeepEqual(g.ev, w.ev) {
					t.Fatalf("%s %q:\n got %+v\nwant %+v", table, v, g.ev, w.ev)
				}
				g.ev, w.ev = nil, nil
				ge, we := g.img.err, w.img.err
				g.img.err, w.img.err = nil, nil
				g.evv, w.evv = envelope.Event{}, envelope.Event{}
				if !reflect.DeepEqual(g, w) || !sameErr(ge, we) {
					t.Fatalf("%s %q:\n got %+v %v\nwant %+v %v", table, v, g, ge, w, we)
				}
				// and laid over a previous state the way the core does
				if img := g.after; img != nil && mi%21 == 0 {
					scanImages = true
					c1, e1 := customerFromJSON(img, prev.c)
					p1, f1 := productFromJSON(img, prev.p)
					k1, g1 := campaignFromJSON(img, prev.k)
					o1, h1 := orderFromJSON(img, prev.o)
					i1, j1 := itemFromJSON(img, prev.i)
					id1, ok1 := rawID(img)
					scanImages = false
					c2, e2 := customerFromJSON(img, prev.c)
					p2, f2 := productFromJSON(img, prev.p)
					k2, g2 := campaignFromJSON(img, prev.k)
					o2, h2 := orderFromJSON(img, prev.o)
					i2, j2 := itemFromJSON(img, prev.i)
					id2, ok2 := rawID(img)
					if c1 != c2 || p1 != p2 || k1 != k2 || o1 != o2 || i1 != i2 || id1 != id2 || ok1 != ok2 ||
						!sameErr(e1, e2) || !sameErr(f1, f2) || !sameErr(g1, g2) || !sameErr(h1, h2) || !sameErr(j1, j2) {
						t.Fatalf("%q: over the previous state differs", img)
					}
				}
			}
		}
	}
	t.Logf("%d decoded records compared", n)
}

// TestScanValues: each column reader on the flat path against jx's, for
// single values (the images' columns one at a time, every table).
func TestScanValues(t *testing.T) {
	defer func() { scanImages = true }()
	vals := []string{`0`, `-0`, `7`, `-12`, `123456789012345678`, `1234567890123456789`, `9999999999999999999`, `-9999999999999999999`, `99999999999999999999`, `1.5`, `1.0`, `-2.50`, `1e3`, `1E-2`, `2.5e+1`,
		`""`, `"x"`, `"12"`, `"-3"`, `"1.5"`, `"12.50"`, `"12.505"`, `"abc"`, `"\u0031"`, `"a\"b"`, `"é"`, "\"\xff\"", `"__debezium_unavailable_value"`,
		`"2026-01-02T03:04:05Z"`, `"2026-01-02T03:04:05.123456789Z"`, `"2026-02-30T03:04:05Z"`, `"2026-01-02 03:04:05"`, `"2026-01-02"`, `"2026-01-02T03:04:05+02:00"`,
		`"infinity"`, `1767323045123456`, `1767323045123`, `true`, `false`, `null`, `{}`, `{"a":1}`, `[]`, `[1,"2"]`}
	cols := []string{"id", "name", "email", "phone", "segment", "price", "currency", "status", "customer_id", "campaign_id", "subtotal", "placed_at", "paid_at", "quantity", "line_no", "discount_percent", "starts_at", "code", "sku", "category", "x"}
	for _, col := range cols {
		for _, val := range vals {
			img := []byte(`{"` + col + `":` + val + `}`)
			for _, two := range []bool{false, true} {
				if two {
					img = []byte(`{"id":3,"` + col + `":` + val + `,"` + col + `":` + val + `}`)
				}
				var got, want [5]any
				var gerr, werr [5]error
				var gm, wm [5]uint32
				for k, on := range []bool{true, false} {
					scanImages = on
					r, e, m := &got, &gerr, &gm
					if !on {
						r, e, m = &want, &werr, &wm
					}
					r[0], m[0], e[0] = parseCustomer(img)
					r[1], m[1], e[1] = parseProduct(img)
					r[2], m[2], e[2] = parseCampaign(img)
					r[3], m[3], e[3] = parseOrder(img)
					r[4], m[4], e[4] = parseItem(img)
					_ = k
				}
				for k := range got {
					if !reflect.DeepEqual(got[k], want[k]) || gm[k] != wm[k] || !sameErr(gerr[k], werr[k]) {
						t.Errorf("%s (%d): %+v %b %v, want %+v %b %v", img, k, got[k], gm[k], gerr[k], want[k], wm[k], werr[k])
					}
				}
			}
		}
	}
}

// TestScanValidJSON: scanValue accepts exactly the JSON values (without
// whitespace) that encoding/json accepts.
func TestScanValidJSON(t *testing.T) {
	var in []string
	for _, base := range []string{`{"a":[1,-2.5e3,true,false,null,"x\n\u00e9",{"b":{}}],"c":[]}`, `[0,-0,0.1,1E+2,"\"",{}]`, `"\\\/\b\f\n\r\t"`, `-12.345e-67`} {
		in = append(in, mutations(base)...)
	}
	for _, s := range in {
		if strings.ContainsAny(s, " \t\r\n") {
			continue
		}
		end, ok := scanValue([]byte(s), 0, 0)
		got := ok && end == len(s)
		if want := json.Valid([]byte(s)); got != want {
			t.Errorf("%q: scanner %v, encoding/json %v", s, got, want)
		}
	}
}

func TestHasSpecial(t *testing.T) {
	for i := 0; i < 8; i++ {
		for c := 0; c < 256; c++ {
			b := []byte("abcdefgh")
			b[i] = byte(c)
			want := false
			for _, x := range b {
				want = want || strSpecial[x]
			}
			if got := hasSpecial(binary.LittleEndian.Uint64(b)); want && !got {
				t.Errorf("%q: special byte missed", b)
			}
		}
	}
}
