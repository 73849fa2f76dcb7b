package chdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// jsonResult is ClickHouse's JSONCompact output.
type jsonResult struct {
	Meta []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"meta"`
	Data [][]any `json:"data"`
}

// decodeJSONCompact turns JSONCompact output (64-bit integers and decimals
// quoted, see querySettings) into a Result with Go-typed values.
func decodeJSONCompact(buf []byte) (*sinks.Result, error) {
	if len(bytes.TrimSpace(buf)) == 0 {
		return &sinks.Result{}, nil
	}
	var jr jsonResult
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	if err := dec.Decode(&jr); err != nil {
		return nil, fmt.Errorf("decode JSONCompact result (a query must not carry its own FORMAT clause): %w", err)
	}
	res := &sinks.Result{Columns: make([]string, len(jr.Meta)), Types: make([]string, len(jr.Meta)), Rows: jr.Data}
	types := make([]*chType, len(jr.Meta))
	for i, m := range jr.Meta {
		res.Columns[i], res.Types[i] = m.Name, m.Type
		t, err := parseType(m.Type)
		if err != nil {
			t = &chType{name: m.Type} // unknown: values stay as decoded JSON
		}
		types[i] = t
	}
	for r, row := range jr.Data {
		for i := range row {
			v, err := decodeValue(types[i], row[i])
			if err != nil {
				return nil, fmt.Errorf("row %d column %s (%s): %w", r, res.Columns[i], res.Types[i], err)
			}
			row[i] = v
		}
	}
	if res.Rows == nil {
		res.Rows = [][]any{}
	}
	return res, nil
}

func decodeValue(t *chType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.kind {
	case kNullable, kLowCardinality:
		return decodeValue(t.elem, v)
	case kInt8, kInt16, kInt32, kInt64:
		return toInt64(v)
	case kUInt8, kUInt16, kUInt32, kUInt64:
		return toUint64(v)
	case kFloat32, kFloat64:
		if s, ok := v.(string); ok {
			switch s {
			case "nan", "-nan":
				return math.NaN(), nil
			case "inf", "+inf":
				return math.Inf(1), nil
			case "-inf":
				return math.Inf(-1), nil
			}
		}
		return toFloat64(v)
	case kDecimal:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		}
	case kDate, kDate32:
		if s, ok := v.(string); ok {
			return time.ParseInLocation("2006-01-02", s, time.UTC)
		}
	case kDateTime, kDateTime64:
		if s, ok := v.(string); ok {
			return time.ParseInLocation("2006-01-02 15:04:05.999999999", s, t.loc)
		}
	case kArray:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want a JSON array, got %T", v)
		}
		for i := range a {
			x, err := decodeValue(t.elem, a[i])
			if err != nil {
				return nil, err
			}
			a[i] = x
		}
		return a, nil
	default:
		return plain(v), nil
	}
	return nil, fmt.Errorf("unexpected JSON value %T", v)
}

// plain replaces json.Number inside values of types the decoder does not know
// (Tuple, Map, JSON, ...) with int64 or float64.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = plain(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = plain(x[k])
		}
	}
	return v
}
