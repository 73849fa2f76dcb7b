package pipeline

import (
	"reflect"
	"testing"

	"github.com/orderflow/orderflow/internal/envelope"
)

// TestDecodeFastSameAsEnvelope: the fast path yields what envelope.Decode
// yields, and unusual values take the slow path.
func TestDecodeFastSameAsEnvelope(t *testing.T) {
	for _, v := range []string{
		`{"before":null,"after":{"id":1,"name":"A \"q\" \u00e9","total":"12.50","n":-3,"f":1.5e3,"ok":true,"x":null,"j":{"a":[1,2,{"b":"c"}]},"arr":["x"]},"source":{"version":"orderflow-1","connector":"postgresql","name":"of","db":"d","schema":"public","table":"orders","lsn":123456789012,"txId":77,"ts_ms":1700000000000,"snapshot":"false"},"op":"c","ts_ms":1700000000001}`,
		`{"before":{"id":1},"after":null,"source":{"table":"orders","lsn":5,"ts_ms":1},"op":"d","ts_ms":2}`,
		`{"before":null,"after":{"id":1,"segment":"gold"},"source":{"table":"customers","lsn":5,"ts_ms":1},"op":"u","unchanged":["name","email"]}`,
		`{"after":{"id":1,"name":"__debezium_unavailable_value"},"source":{"table":"customers","lsn":5},"op":"u"}`,
		`{"schema":{},"payload":{"after":{"id":1},"source":{"table":"customers","lsn":5},"op":"r"}}`,
	} {
		want, werr := envelope.Decode([]byte(v))
		got, _, _, gerr := decodeEvent([]byte(v))
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v %v\nwant %#v %v", v, got, gerr, want, werr)
		}
	}
	for _, v := range []string{`{"op":"x","source":{"table":"t"},"after":{}}`, `{"op":"c","after":{"id":1},"source":`, `[1]`, `{"op":"u","source":{"table":"t"}}`} {
		if _, _, _, err := decodeEvent([]byte(v)); err == nil {
			t.Errorf("%s: want an error", v)
		} else if _, ok := IsPoison(err); !ok {
			t.Errorf("%s: %v is not poison", v, err)
		}
	}
}

// TestTypedSameAsMap: decoding an image straight into the table struct
// gives what the map path gives, for full rows, NULLs, absent (TOAST)
// columns, alternative encodings and Debezium's placeholder.
func TestTypedSameAsMap(t *testing.T) {
	images := []string{
		`{"id":1,"name":"Ann","email":"a@x.io","phone":null,"segment":"gold","region":"europe","country":"DE","city":"Berlin","created_at":"2026-01-02T03:04:05.123456Z","updated_at":1767323045123456}`,
		`{"id":"2","name":"__debezium_unavailable_value","segment":"silver","phone":"+49 1"}`,
		`{"id":3,"sku":"S-1","name":"Book","category":"books","price":"12.5","currency":"EUR","created_at":"2026-01-02 03:04:05","updated_at":1767323045123}`,
		`{"id":4,"price":7,"code":"SPRING","starts_at":"2026-03-01T00:00:00Z","ends_at":"2026-04-01T00:00:00Z","discount_percent":"15.00"}`,
		`{"id":5,"customer_id":9,"campaign_id":null,"status":"paid","currency":"EUR","subtotal":"30.00","discount":"0","total":30,"placed_at":"2026-01-02T03:04:05Z","paid_at":null,"shipped_at":"2026-01-03T00:00:00Z"}`,
		`{"id":6,"order_id":5,"line_no":2,"product_id":3,"quantity":4,"unit_price":"2.50","discount":"0.10"}`,
		`{"id":7,"campaign_id":11,"discount":"__debezium_unavailable_value","j":{"a":[1]}}`,
	}
	for _, img := range images {
		e, err := envelope.Decode([]byte(`{"op":"u","source":{"table":"x"},"after":` + img + `}`))
		if err != nil {
			t.Fatal(err)
		}
		m := e.After
		raw := []byte(img)
		check := func(name string, a, b any, ea, eb error) {
			t.Helper()
			if (ea == nil) != (eb == nil) || !reflect.DeepEqual(a, b) {
				t.Errorf("%s %s:\n typed %+v %v\n   map %+v %v", name, img, a, ea, b, eb)
			}
		}
		prevC := Customer{Name: "old", Email: "old@x.io", Segment: symOf("bronze")}
		c1, e1 := customerFromJSON(raw, prevC)
		c2, e2 := decodeCustomer(m, prevC)
		check("customer", c1, c2, e1, e2)
		p1, e1 := productFromJSON(raw, Product{Name: "old"})
		p2, e2 := decodeProduct(m, Product{Name: "old"})
		check("product", p1, p2, e1, e2)
		k1, e1 := campaignFromJSON(raw, Campaign{Code: "OLD"})
		k2, e2 := decodeCampaign(m, Campaign{Code: "OLD"})
		check("campaign", k1, k2, e1, e2)
		prevO := newOrder()
		prevO.Discount = 5
		o1, e1 := orderFromJSON(raw, prevO)
		o2, e2 := decodeOrder(m, prevO)
		check("order", o1, o2, e1, e2)
		i1, e1 := itemFromJSON(raw, Item{Quantity: 1})
		i2, e2 := decodeItem(m, Item{Quantity: 1})
		check("item", i1, i2, e1, e2)
		id, ok := rawID(raw)
		wid, wok := keyID(e)
		if id != wid || ok != wok {
			t.Errorf("id %s: %d %v, want %d %v", img, id, ok, wid, wok)
		}
	}
}
