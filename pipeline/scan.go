package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/go-faster/jx"

	"github.com/orderflow/orderflow/internal/envelope"
)

// A hand-written scanner for the exact envelope layout capture and backfill
// write (ingest/capture/decode.go encode, ingest/backfill/encode.go; also
// json.Marshal of envelope.Event):
//
//	{"before":<image|null>,"after":<image|null>,"source":{"version":"…",
//	"connector":"…","name":"…","db":"…","schema":"…","table":"…","lsn":N,
//	"txId":N,"ts_ms":N,"snapshot":"…"},"op":"…","ts_ms":N[,"unchanged":["…",…]]}
//
// with no whitespace, no escapes in the envelope's strings and plain
// integers. Images are checked to be valid JSON (RFC 8259, no whitespace)
// while their end is found. Anything else (Debezium's own envelopes, the
// schema wrapper, another field order, malformed input) is not on this
// path: the scanner says so and the general decoder (decodeFastInto, then
// envelope.Decode) takes the record from its start. On its path the
// scanner yields exactly what decodeFastInto yields.

// scanImages turns flatFields' path on (tests compare it with jx's).
var scanImages = true

// maxScanDepth bounds the nesting of a value the scanner accepts (deeper
// values take the general decoder).
const maxScanDepth = 64

// strSpecial marks the bytes that end the fast loop over a string: the
// quote, the backslash and the control characters (invalid in JSON text).
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

var hexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

// scanString checks the JSON string starting at b[i] == '"' and returns
// the index after its closing quote and whether it holds escapes.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	j := i + 1
	for {
		// eight bytes at a time while none is special
		for j+8 <= len(b) && !hasSpecial(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		for j < len(b) && !strSpecial[b[j]] {
			j++
		}
		if j >= len(b) {
			return 0, false, false
		}
		switch b[j] {
		case '"':
			return j + 1, esc, true
		case '\\':
			esc = true
			if j+1 >= len(b) {
				return 0, false, false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+5 >= len(b) || !hexDigit[b[j+2]] || !hexDigit[b[j+3]] || !hexDigit[b[j+4]] || !hexDigit[b[j+5]] {
					return 0, false, false
				}
				j += 6
			default:
				return 0, false, false
			}
		default: // a control character
			return 0, false, false
		}
	}
}

// hasSpecial reports whether one of the eight bytes of x is a quote, a
// backslash or below 0x20 (may report true for a byte >= 0x80; the byte
// loop decides then).
func hasSpecial(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return ((q-ones)|(bs-ones)|(x-ones*0x20))&highs != 0
}

// scanNumber checks the JSON number starting at b[i] and returns the index
// after it (the caller checks what follows).
func scanNumber(b []byte, i int) (int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j >= len(b) || !isDigit(b[j]) {
		return 0, false
	}
	if b[j] == '0' {
		j++
	} else {
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	if j < len(b) && b[j] == '.' {
		j++
		k := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if j == k {
			return 0, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if j == k {
			return 0, false
		}
	}
	return j, true
}

// scanValue checks the JSON value starting at b[i] and returns the index
// after it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; c {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{':
		return scanObject(b, i, depth+1)
	case '[':
		return scanArray(b, i, depth+1)
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	default:
		if c == '-' || isDigit(c) {
			return scanNumber(b, i)
		}
		return 0, false
	}
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanObject checks the object starting at b[i] == '{'.
func scanObject(b []byte, i, depth int) (int, bool) {
	if depth > maxScanDepth {
		return 0, false
	}
	j := i + 1
	if j < len(b) && b[j] == '}' {
		return j + 1, true
	}
	for {
		if j >= len(b) || b[j] != '"' {
			return 0, false
		}
		var ok bool
		if j, _, ok = scanString(b, j); !ok || j >= len(b) || b[j] != ':' {
			return 0, false
		}
		if j, ok = scanValue(b, j+1, depth); !ok || j >= len(b) {
			return 0, false
		}
		switch b[j] {
		case ',':
			j++
		case '}':
			return j + 1, true
		default:
			return 0, false
		}
	}
}

// scanArray checks the array starting at b[i] == '['.
func scanArray(b []byte, i, depth int) (int, bool) {
	if depth > maxScanDepth {
		return 0, false
	}
	j := i + 1
	if j < len(b) && b[j] == ']' {
		return j + 1, true
	}
	for {
		var ok bool
		if j, ok = scanValue(b, j, depth); !ok || j >= len(b) {
			return 0, false
		}
		switch b[j] {
		case ',':
			j++
		case ']':
			return j + 1, true
		default:
			return 0, false
		}
	}
}

// envScan is a cursor over one record value.
type envScan struct {
	b  []byte
	i  int
	ok bool
}

// lit consumes s.
func (s *envScan) lit(lit string) {
	if !s.ok || len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.ok = false
		return
	}
	s.i += len(lit)
}

// image consumes an object or null; nil for null.
func (s *envScan) image() []byte {
	if !s.ok {
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		s.lit("null")
		return nil
	}
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		s.ok = false
		return nil
	}
	end, ok := scanObject(s.b, s.i, 1)
	if !ok {
		s.ok = false
		return nil
	}
	img := s.b[s.i:end]
	s.i = end
	return img
}

// str consumes a string without escapes and returns its bytes.
func (s *envScan) str() []byte {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.ok = false
		return nil
	}
	end, esc, ok := scanString(s.b, s.i)
	if !ok || esc {
		s.ok = false
		return nil
	}
	v := s.b[s.i+1 : end-1]
	s.i = end
	return v
}

// uint consumes a plain unsigned integer (no sign, no leading zero, at
// most 19 digits: no overflow).
func (s *envScan) uint() uint64 {
	if !s.ok {
		return 0
	}
	j := s.i
	var n uint64
	for j < len(s.b) && isDigit(s.b[j]) {
		n = n*10 + uint64(s.b[j]-'0')
		j++
	}
	if d := j - s.i; d == 0 || d > 19 || (d > 1 && s.b[s.i] == '0') {
		s.ok = false
		return 0
	}
	s.i = j
	return n
}

// int consumes a plain integer (no leading zero, at most 18 digits, no "-0").
func (s *envScan) int() int64 {
	if !s.ok {
		return 0
	}
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	j := s.i
	n := s.uint()
	if s.ok && (s.i-j > 18 || (neg && n == 0)) {
		s.ok = false
	}
	if neg {
		return -int64(n)
	}
	return int64(n)
}

// envInterner returns the envelope's low-cardinality strings without an
// allocation or a lock when they equal the previous record's (one per
// field), else through internedStr's table.
type envInterner struct {
	last [9][4]string // per field, the last distinct values
	next [9]uint8
}

func (c *envInterner) str(slot int, b []byte) string {
	l := &c.last[slot]
	for k := range l {
		if string(b) == l[k] {
			return l[k]
		}
	}
	s := internBytes(b)
	l[c.next[slot]%4] = s
	c.next[slot]++
	return s
}

// scanEnvelope decodes value into *e (zero on entry) when it has the exact
// layout above and is a valid event (what decodeFastInto accepts); ok is
// false otherwise (*e is then partly filled).
func scanEnvelope(e *envelope.Event, value []byte, c *envInterner) (before, after []byte, ok bool) {
	s := envScan{b: value, ok: true}
	s.lit(`{"before":`)
	before = s.image()
	s.lit(`,"after":`)
	after = s.image()
	s.lit(`,"source":{"version":`)
	version := s.str()
	s.lit(`,"connector":`)
	connector := s.str()
	s.lit(`,"name":`)
	name := s.str()
	s.lit(`,"db":`)
	db := s.str()
	s.lit(`,"schema":`)
	schema := s.str()
	s.lit(`,"table":`)
	table := s.str()
	s.lit(`,"lsn":`)
	e.Source.LSN = s.uint()
	s.lit(`,"txId":`)
	e.Source.TxID = s.int()
	s.lit(`,"ts_ms":`)
	e.Source.TsMs = s.int()
	s.lit(`,"snapshot":`)
	snapshot := s.str()
	s.lit(`},"op":`)
	op := s.str()
	s.lit(`,"ts_ms":`)
	e.TsMs = s.int()
	if s.ok && s.i < len(value) && value[s.i] == ',' {
		s.lit(`,"unchanged":[`)
		if s.ok && s.i < len(value) && value[s.i] == ']' {
			s.i++
		} else {
			for s.ok {
				e.Unchanged = append(e.Unchanged, string(s.str()))
				if s.ok && s.i < len(value) && value[s.i] == ',' {
					s.i++
					continue
				}
				s.lit(`]`)
				break
			}
		}
	}
	s.lit(`}`)
	if !s.ok || s.i != len(value) || len(table) == 0 {
		return nil, nil, false
	}
	switch string(op) {
	case envelope.OpCreate, envelope.OpRead, envelope.OpUpdate:
		if after == nil {
			return nil, nil, false
		}
	case envelope.OpDelete:
		if before == nil {
			return nil, nil, false
		}
	default:
		return nil, nil, false
	}
	e.Source.Version = c.str(0, version)
	e.Source.Connector = c.str(1, connector)
	e.Source.Name = c.str(2, name)
	e.Source.DB = c.str(3, db)
	e.Source.Schema = c.str(4, schema)
	e.Source.Table = c.str(5, table)
	e.Source.Snapshot = c.str(6, snapshot)
	e.Op = c.str(7, op)
	return before, after, true
}

// Image columns on the scanner's path. An image that scanObject accepts
// without whitespace and with plain keys is walked here, the value of each
// column handed to the table's parse function as its bytes (jv.tok); a
// value the fast readers do not take is read by jx from those bytes alone,
// which gives what jx gives in place.

// flatFields is fields' fast path: ok is false (and set never called) when
// raw is not a valid object of at most maxFlatCols columns with plain keys
// and no whitespace.
func flatFields(raw []byte, set func(col []byte, v jv) error) (err error, ok bool) {
	if !scanImages {
		return nil, false
	}
	var cols [maxFlatCols]struct{ k0, k1, v1 int32 } // key [k0, k1), value [k1+2, v1)
	n := 0
	if len(raw) < 2 || raw[0] != '{' || len(raw) > 1<<30 {
		return nil, false
	}
	j := 1
	if raw[j] != '}' {
		for {
			if n == maxFlatCols || j >= len(raw) || raw[j] != '"' {
				return nil, false
			}
			end, esc, ok := scanString(raw, j)
			if !ok || esc || end >= len(raw) || raw[end] != ':' {
				return nil, false // keys with escapes: jx unescapes them
			}
			vend, ok := scanValue(raw, end+1, 1)
			if !ok || vend >= len(raw) {
				return nil, false
			}
			cols[n].k0, cols[n].k1, cols[n].v1 = int32(j+1), int32(end-1), int32(vend)
			n++
			j = vend
			if raw[j] == '}' {
				break
			}
			if raw[j] != ',' {
				return nil, false
			}
			j++
		}
	}
	if j != len(raw)-1 {
		return nil, false
	}
	for _, c := range cols[:n] {
		key := raw[c.k0:c.k1]
		if err := set(key, jv{tok: raw[c.k1+2 : c.v1]}); err != nil && !errors.Is(err, errAbsent) {
			return fmt.Errorf("column %s: %w", key, err), true
		}
	}
	return nil, true
}

// maxFlatCols is the most columns of an image on flatFields' path.
const maxFlatCols = 48

// slow reads the token with jx (the general readers, from the value's bytes).
func (v jv) slow() (jv, func()) {
	d := jx.GetDecoder()
	d.ResetBytes(v.tok)
	return jv{d: d}, func() { jx.PutDecoder(d) }
}

// plainStr is the content of a string token without escapes.
func (v jv) plainStr() ([]byte, bool) {
	t := v.tok
	if len(t) < 2 || t[0] != '"' {
		return nil, false
	}
	s := t[1 : len(t)-1]
	for _, c := range s {
		if c == '\\' {
			return nil, false
		}
	}
	return s, true
}

// plainInt parses -?d{1,18}.
func plainInt(t []byte) (int64, bool) {
	neg := len(t) > 0 && t[0] == '-'
	if neg {
		t = t[1:]
	}
	if len(t) == 0 || len(t) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range t {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func (v jv) isNull() bool { return len(v.tok) == 4 && string(v.tok) == "null" }
