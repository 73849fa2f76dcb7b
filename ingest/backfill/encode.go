package backfill

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/orderflow/orderflow/internal/envelope"
)

// Encoding of snapshot rows into the envelope (internal/envelope), from
// COPY's text output with capture's session settings (DateStyle ISO,
// TimeZone UTC, extra_float_digits 3): the same JSON values capture
// publishes for streamed rows.
type colKind uint8

const (
	kString colKind = iota
	kInt
	kFloat
	kNumeric
	kBool
	kJSON
	kTimestampTZ
	kTimestamp
	kDate
	kBytea
)

func kindOf(oid uint32) colKind {
	switch oid {
	case 20, 21, 23, 26, 28, 29: // int8, int2, int4, oid, xid, cid
		return kInt
	case 700, 701:
		return kFloat
	case 1700:
		return kNumeric
	case 16:
		return kBool
	case 114, 3802:
		return kJSON
	case 1184:
		return kTimestampTZ
	case 1114:
		return kTimestamp
	case 1082:
		return kDate
	case 17:
		return kBytea
	}
	return kString // text, varchar, bpchar, uuid, enums, ... as JSON strings
}

// rowEncoder renders one table's snapshot rows.
type rowEncoder struct {
	names  [][]byte // `"col":`
	kinds  []colKind
	keyIdx int
	keyPre []byte // `{"col":`
	srcPre []byte // `"source":{...,"lsn":`
	srcSuf []byte // `,"txId":0,"ts_ms":...,"snapshot":"true"},"op":"r","ts_ms":`
	buf    []byte
}

func newRowEncoder(prefix, db, schema string, tm *tableMeta, version uint64, at time.Time) *rowEncoder {
	e := &rowEncoder{}
	for i, c := range tm.cols {
		e.names = append(e.names, append(strconv.AppendQuote(nil, c.Name), ':'))
		e.kinds = append(e.kinds, kindOf(c.DataType))
		if c.Name == tm.key {
			e.keyIdx = i
		}
	}
	e.keyPre = append([]byte{'{'}, e.names[e.keyIdx]...)
	p := []byte(`"source":{"version":`)
	p = appendJSONString(p, envelope.Version)
	p = append(p, `,"connector":"postgresql","name":`...)
	p = appendJSONString(p, prefix)
	p = append(p, `,"db":`...)
	p = appendJSONString(p, db)
	p = append(p, `,"schema":`...)
	p = appendJSONString(p, schema)
	p = append(p, `,"table":`...)
	p = appendJSONString(p, tm.name)
	p = append(p, `,"lsn":`...)
	p = strconv.AppendUint(p, version, 10)
	p = append(p, `,"txId":0,"ts_ms":`...)
	p = strconv.AppendInt(p, at.UnixMilli(), 10)
	p = append(p, `,"snapshot":"true"},"op":"r","ts_ms":`...)
	e.srcPre = p
	return e
}

// imageAt is where the after image starts in an encoded value.
const imageAt = len(`{"before":null,"after":`)

// encode returns the record key and value of one row (fresh slices), and
// the row's JSON image: value[imageAt:imageEnd].
func (e *rowEncoder) encode(t *pglogrepl.TupleData, nowMs int64) (key, value []byte, imageEnd int) {
	b := append(e.buf[:0], `{"before":null,"after":{`...)
	for i, c := range t.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.names[i]...)
		b = e.appendValue(b, e.kinds[i], c)
	}
	b = append(b, '}')
	imageEnd = len(b)
	b = append(b, ',')
	b = append(b, e.srcPre...)
	b = strconv.AppendInt(b, nowMs, 10)
	b = append(b, '}')
	value = append(make([]byte, 0, len(b)), b...)
	kb := append(b[:0], e.keyPre...)
	kb = e.appendValue(kb, e.kinds[e.keyIdx], t.Columns[e.keyIdx])
	kb = append(kb, '}')
	key = append(make([]byte, 0, len(kb)), kb...)
	e.buf = kb
	return key, value, imageEnd
}

func (e *rowEncoder) appendValue(b []byte, k colKind, c *pglogrepl.TupleDataColumn) []byte {
	if c.DataType == pglogrepl.TupleDataTypeNull {
		return append(b, "null"...)
	}
	s := c.Data
	switch k {
	case kInt:
		return append(b, s...)
	case kFloat:
		if _, err := strconv.ParseFloat(string(s), 64); err != nil || string(s) == "NaN" || string(s) == "Infinity" || string(s) == "-Infinity" {
			return appendJSONStringBytes(b, s)
		}
		return append(b, s...)
	case kNumeric:
		return appendJSONStringBytes(b, s)
	case kBool:
		if len(s) > 0 && s[0] == 't' {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case kJSON:
		return append(b, s...)
	case kTimestampTZ, kTimestamp:
		if out, ok := appendTimestamp(b, s, k == kTimestampTZ); ok {
			return out
		}
		return appendJSONStringBytes(b, s)
	case kBytea:
		if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
			raw, err := hex.DecodeString(string(s[2:]))
			if err == nil {
				return appendJSONString(b, base64.StdEncoding.EncodeToString(raw))
			}
		}
		return appendJSONStringBytes(b, s)
	}
	return appendJSONStringBytes(b, s) // kString, kDate
}

// appendTimestamp renders ISO text ("2026-01-02 03:04:05.5+00") as RFC 3339
// with six fraction digits ("2026-01-02T03:04:05.500000Z"; no "Z" without
// zone). ok is false for text it does not recognize (infinity, BC, ...).
func appendTimestamp(b, s []byte, tz bool) ([]byte, bool) {
	if len(s) < 19 || s[10] != ' ' || s[4] != '-' || s[13] != ':' {
		return b, false
	}
	rest := s[19:]
	frac := []byte(nil)
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		frac, rest = rest[1:i], rest[i:]
	}
	if tz {
		if string(rest) != "+00" {
			t, err := time.Parse("2006-01-02 15:04:05.999999999Z07:00", string(s))
			if err != nil {
				t, err = time.Parse("2006-01-02 15:04:05.999999999Z07", string(s))
			}
			if err != nil {
				return b, false
			}
			return appendJSONString(b, envelope.FormatTime(t)), true
		}
	} else if len(rest) != 0 {
		return b, false
	}
	if len(frac) > 6 {
		return b, false
	}
	b = append(b, '"')
	b = append(b, s[:10]...)
	b = append(b, 'T')
	b = append(b, s[11:19]...)
	b = append(b, '.')
	b = append(b, frac...)
	for i := len(frac); i < 6; i++ {
		b = append(b, '0')
	}
	if tz {
		b = append(b, 'Z')
	}
	return append(b, '"'), true
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte { return appendJSONStringBytes(b, []byte(s)) }

// appendJSONStringBytes appends s as a JSON string (valid UTF-8 assumed, as
// PostgreSQL text is in a UTF-8 database).
func appendJSONStringBytes(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
