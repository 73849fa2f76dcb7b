package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/sinks"
)

// Money is an exact amount in hundredths (numeric(…,2) in PostgreSQL,
// Decimal(18, 2) in ClickHouse).
type Money int64

// ParseMoney parses decimal text with at most two significant fraction digits.
func ParseMoney(s string) (Money, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	if neg || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 {
		return 0, fmt.Errorf("%q has more than 2 decimal places", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	if intPart == "" {
		intPart = "0"
	}
	i, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || strings.ContainsAny(intPart, "+-") {
		return 0, fmt.Errorf("%q is not a decimal", s)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || strings.ContainsAny(frac, "+-") {
		return 0, fmt.Errorf("%q is not a decimal", s)
	}
	m := Money(i*100 + f)
	if neg {
		m = -m
	}
	return m, nil
}

// String renders m as exact decimal text ("12.50", "-0.05").
func (m Money) String() string { return sinks.CentsText(int64(m)) }

// Micros is a timestamp in microseconds since the epoch (UTC); NullTime
// marks a NULL.
type Micros int64

// NullTime is the NULL timestamp.
const NullTime Micros = -1 << 63

// Time converts to time.Time (UTC).
func (m Micros) Time() time.Time { return time.UnixMicro(int64(m)).UTC() }

// Value is the value to insert: time.Time, or nil for NULL.
func (m Micros) Value() any {
	if m == NullTime {
		return nil
	}
	return m.Time()
}

// NotNull is the value for a non-nullable column (the epoch for NULL).
func (m Micros) NotNull() time.Time {
	if m == NullTime {
		return time.Unix(0, 0).UTC()
	}
	return m.Time()
}

// NullInt is a nullable integer.
type NullInt struct {
	V     int64
	Valid bool
}

// Value is the value to insert.
func (n NullInt) Value() any {
	if !n.Valid {
		return nil
	}
	return n.V
}

// interned low-cardinality strings (segment, region, country, city,
// category, status, currency): one copy per distinct value.
var interned sync.Map

func intern(s string) string {
	if v, ok := interned.Load(s); ok {
		return v.(string)
	}
	v, _ := interned.LoadOrStore(strings.Clone(s), strings.Clone(s))
	return v.(string)
}

// NullString is a nullable text value.
type NullString struct {
	S     string
	Valid bool
}

// Value is the value to insert.
func (n NullString) Value() any {
	if !n.Valid {
		return nil
	}
	return n.S
}

// Sym is a low-cardinality string (segment, region, country, city,
// category) stored as a 4-byte index into a process-wide table: the state
// of a million customers holds four numbers, not four string headers.
type Sym uint32

var syms struct {
	sync.RWMutex
	ids  map[string]Sym
	strs []string
}

func symOfBytes(b []byte) Sym {
	syms.RLock()
	id, ok := syms.ids[string(b)]
	syms.RUnlock()
	if ok {
		return id
	}
	return symOf(string(b))
}

func symOf(s string) Sym {
	syms.RLock()
	id, ok := syms.ids[s]
	syms.RUnlock()
	if ok {
		return id
	}
	syms.Lock()
	defer syms.Unlock()
	if id, ok := syms.ids[s]; ok {
		return id
	}
	if syms.ids == nil {
		syms.ids = map[string]Sym{"": 0}
		syms.strs = []string{""}
	}
	id = Sym(len(syms.strs))
	s = strings.Clone(s)
	syms.ids[s] = id
	syms.strs = append(syms.strs, s)
	strs := syms.strs
	symStrs.Store(&strs)
	return id
}

// symStrs is syms.strs as published after each new symbol: String reads
// it without a lock (entries never change once published).
var symStrs atomic.Pointer[[]string]

// String is the symbol's text.
func (s Sym) String() string {
	p := symStrs.Load()
	if p == nil || int(s) >= len(*p) {
		return ""
	}
	return (*p)[s]
}

// rowReader decodes the columns present in a row image into typed fields,
// leaving a field untouched when its column is absent (an unchanged TOAST
// value, or a key-only "before" image): the caller starts from the previous
// state, so absent columns carry forward. The first error is kept.
type rowReader struct {
	row envelope.Row
	err error
}

func (r *rowReader) has(col string) bool {
	_, ok := r.row[col]
	return ok
}

func (r *rowReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *rowReader) int(col string, p *int64) {
	if !r.has(col) {
		return
	}
	v, ok, err := r.row.Int(col)
	if err != nil {
		r.fail(err)
		return
	}
	if ok {
		*p = v
	}
}

func (r *rowReader) int32(col string, p *int32) {
	var v int64 = int64(*p)
	r.int(col, &v)
	*p = int32(v)
}

func (r *rowReader) nullInt(col string, p *NullInt) {
	if !r.has(col) {
		return
	}
	v, ok, err := r.row.Int(col)
	if err != nil {
		r.fail(err)
		return
	}
	*p = NullInt{V: v, Valid: ok}
}

func (r *rowReader) str(col string, p *string) {
	if !r.has(col) {
		return
	}
	v, _, err := r.row.String(col)
	if err != nil {
		r.fail(err)
		return
	}
	*p = v
}

func (r *rowReader) lowCard(col string, p *string) {
	var v = *p
	r.str(col, &v)
	*p = intern(v)
}

func (r *rowReader) nullStr(col string, p *NullString) {
	if !r.has(col) {
		return
	}
	v, ok, err := r.row.String(col)
	if err != nil {
		r.fail(err)
		return
	}
	*p = NullString{S: v, Valid: ok}
}

func (r *rowReader) sym(col string, p *Sym) {
	if !r.has(col) {
		return
	}
	v, _, err := r.row.String(col)
	if err != nil {
		r.fail(err)
		return
	}
	*p = symOf(v)
}

func (r *rowReader) money(col string, p *Money) {
	if !r.has(col) {
		return
	}
	v, ok, err := r.row.Decimal(col)
	if err != nil {
		r.fail(err)
		return
	}
	if !ok {
		*p = 0
		return
	}
	m, err := ParseMoney(v)
	if err != nil {
		r.fail(fmt.Errorf("column %s: %v", col, err))
		return
	}
	*p = m
}

func (r *rowReader) time(col string, p *Micros) {
	if !r.has(col) {
		return
	}
	v, ok, err := r.row.Time(col)
	if err != nil {
		r.fail(err)
		return
	}
	if !ok {
		*p = NullTime
		return
	}
	*p = Micros(v.UnixMicro())
}
