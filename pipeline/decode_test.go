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
