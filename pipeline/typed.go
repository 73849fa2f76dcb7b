package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-faster/jx"

	"github.com/orderflow/orderflow/internal/envelope"
)

// Typed decoding straight from a row image's JSON into the table structs:
// no map per event. Same semantics as the envelope.Row accessors behind
// rowReader: a column absent from the image (or Debezium's TOAST
// placeholder) leaves the field as it was, so the previous state carries
// forward. decodeImage picks this path when the raw image is known.

// jv reads one JSON value; absent reports a TOAST placeholder. The value
// is read by d, or (scanner path, d nil) is tok, its bytes, checked valid
// JSON: plain values are read from them directly, others by jx from tok
// alone (see flatFields).
type jv struct {
	d   *jx.Decoder
	tok []byte
}

var errAbsent = errors.New("absent")

func (v jv) str() (string, bool, error) {
	if v.d == nil {
		switch c := v.tok[0]; {
		case c == '"':
			if s, ok := v.plainStr(); ok {
				if string(s) == envelope.DebeziumUnavailable {
					return "", false, errAbsent
				}
				return string(s), true, nil
			}
		case c == 'n':
			return "", false, nil
		case c == '-' || isDigit(c):
			return string(v.tok), true, nil
		}
		w, put := v.slow()
		defer put()
		return w.str()
	}
	switch v.d.Next() {
	case jx.String:
		s, err := v.d.Str()
		if err == nil && s == envelope.DebeziumUnavailable {
			return "", false, errAbsent
		}
		return s, true, err
	case jx.Number:
		n, err := v.d.Num()
		return n.String(), true, err
	case jx.Bool:
		b, err := v.d.Bool()
		return strconv.FormatBool(b), true, err
	case jx.Null:
		return "", false, v.d.Null()
	default:
		raw, err := v.d.Raw()
		return string(raw), true, err
	}
}

func (v jv) int() (int64, bool, error) {
	if v.d == nil {
		if i, ok := plainInt(v.tok); ok {
			return i, true, nil
		}
		if v.isNull() {
			return 0, false, nil
		}
		w, put := v.slow()
		defer put()
		return w.int()
	}
	switch v.d.Next() {
	case jx.Number:
		n, err := v.d.Num()
		if err != nil {
			return 0, false, err
		}
		if n.IsInt() {
			i, err := n.Int64()
			return i, true, err
		}
		f, err := n.Float64()
		return int64(f), true, err
	case jx.String:
		s, err := v.d.Str()
		if err != nil {
			return 0, false, err
		}
		if s == envelope.DebeziumUnavailable {
			return 0, false, errAbsent
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%q is not an integer", s)
		}
		return i, true, nil
	case jx.Null:
		return 0, false, v.d.Null()
	}
	return 0, false, fmt.Errorf("%s is not an integer", v.d.Next())
}

func (v jv) money() (Money, bool, error) {
	if v.d == nil {
		t := v.tok
		if len(t) > 1 && t[0] == '"' {
			t = t[1 : len(t)-1] // no escapes: parseMoneyFast takes only digits, '-' and '.'
		}
		if m, ok := parseMoneyFast(t); ok {
			return m, true, nil
		}
		if v.isNull() {
			return 0, false, nil
		}
		w, put := v.slow()
		defer put()
		return w.money()
	}
	var s string
	switch v.d.Next() {
	case jx.String:
		b, err := v.d.StrBytes()
		if err != nil {
			return 0, false, err
		}
		if m, ok := parseMoneyFast(b); ok {
			return m, true, nil
		}
		if s = string(b); s == envelope.DebeziumUnavailable {
			return 0, false, errAbsent
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return 0, false, fmt.Errorf("%q is not a decimal", s)
		}
	case jx.Number:
		n, err := v.d.Num()
		if err != nil {
			return 0, false, err
		}
		if m, ok := parseMoneyFast(n); ok {
			return m, true, nil
		}
		s = n.String()
	case jx.Null:
		return 0, false, v.d.Null()
	default:
		return 0, false, fmt.Errorf("%s is not a decimal", v.d.Next())
	}
	m, err := ParseMoney(s)
	return m, err == nil, err
}

// parseMoneyFast parses the common form of a decimal, -?d{1,15}(.d{1,2})?,
// exactly as ParseMoney does; ok is false for anything else (the caller
// takes the general path).
func parseMoneyFast(b []byte) (Money, bool) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		i, neg = 1, true
	}
	var n int64
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
		digits++
	}
	if digits == 0 || digits > 15 {
		return 0, false
	}
	n *= 100
	if i < len(b) {
		if b[i] != '.' {
			return 0, false
		}
		frac := b[i+1:]
		switch {
		case len(frac) == 1 && isDigit(frac[0]):
			n += int64(frac[0]-'0') * 10
		case len(frac) == 2 && isDigit(frac[0]) && isDigit(frac[1]):
			n += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
		default:
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return Money(n), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

// parseTimeFast parses the form capture writes, UTC RFC 3339
// "2006-01-02T15:04:05[.fraction]Z" with 1 to 9 fraction digits, to what
// time.Parse(time.RFC3339Nano, ...) gives; ok is false for anything else,
// including out-of-range fields (the caller takes the general path).
func parseTimeFast(b []byte) (Micros, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if !isDigit(c) {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	if day > 28 && day > daysIn(year, month) {
		return 0, false
	}
	var micros int64
	if rest := b[19 : len(b)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		frac := rest[1:]
		for k, c := range frac {
			if !isDigit(c) {
				return 0, false
			}
			if k < 6 {
				micros = micros*10 + int64(c-'0')
			}
		}
		for k := len(frac); k < 6; k++ {
			micros *= 10
		}
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return Micros(secs*1_000_000 + micros), true
}

// daysIn is the number of days of a month (proleptic Gregorian, as time).
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the date
// (proleptic Gregorian; H. Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := m - 3
	if m <= 2 {
		mp = m + 9
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func (v jv) time() (Micros, bool, error) {
	if v.d == nil {
		if len(v.tok) > 1 && v.tok[0] == '"' {
			// no escapes: parseTimeFast takes only digits and "-:.TZ"
			if m, ok := parseTimeFast(v.tok[1 : len(v.tok)-1]); ok {
				return m, true, nil
			}
		}
		if v.isNull() {
			return 0, false, nil
		}
		w, put := v.slow()
		defer put()
		return w.time()
	}
	switch v.d.Next() {
	case jx.String:
		b, err := v.d.StrBytes()
		if err != nil {
			return 0, false, err
		}
		if m, ok := parseTimeFast(b); ok {
			return m, true, nil
		}
		s := string(b)
		if s == envelope.DebeziumUnavailable {
			return 0, false, errAbsent
		}
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return Micros(t.UnixMicro()), true, nil
			}
		}
		return 0, false, fmt.Errorf("%q is not a timestamp", s)
	case jx.Number:
		n, err := v.d.Num()
		if err != nil {
			return 0, false, err
		}
		i, err := n.Int64()
		if err != nil {
			return 0, false, fmt.Errorf("%s is not a timestamp", n)
		}
		if i > 1e13 || i < -1e13 {
			return Micros(i), true, nil
		}
		return Micros(i * 1000), true, nil
	case jx.Null:
		return 0, false, v.d.Null()
	}
	return 0, false, fmt.Errorf("%s is not a timestamp", v.d.Next())
}

// skip passes over a value the caller does not read.
func (v jv) skip() error {
	if v.d == nil {
		return nil
	}
	return v.d.Skip()
}

// fields walks an image's columns; set returns the column's error.
func fields(raw []byte, set func(col []byte, v jv) error) error {
	if err, ok := flatFields(raw, set); ok {
		return err
	}
	d := jx.GetDecoder()
	defer jx.PutDecoder(d)
	d.ResetBytes(raw)
	var colErr error
	err := d.ObjBytes(func(d *jx.Decoder, key []byte) error {
		if err := set(key, jv{d: d}); err != nil && !errors.Is(err, errAbsent) {
			colErr = fmt.Errorf("column %s: %w", key, err)
			return colErr
		}
		return nil
	})
	if colErr != nil {
		return colErr // without the decoder's "callback:" wrapping
	}
	return err
}

// Image decoding is split in two: parse (pure: which columns the image
// has, typed, and a bit per struct field a column set) and over (the parsed
// fields over the previous state). parse runs ahead, on other cores; the
// previous state is known only when the event is applied, in order.
//
// A field's bit is set exactly when the column would have overwritten the
// field: an integer key or count only when not NULL; text, symbols,
// decimals (NULL = 0), timestamps (NULL = NullTime) and nullable values
// whenever present. Debezium's TOAST placeholder sets nothing.

// set stores v in *p and marks bit when err is nil (and ok, for setOK).
func set[T any](p *T, m *uint32, bit uint32, v T, err error) error {
	if err == nil {
		*p = v
		*m |= bit
	}
	return err
}

func setOK[T any](p *T, m *uint32, bit uint32, v T, ok bool, err error) error {
	if err == nil && ok {
		*p = v
		*m |= bit
	}
	return err
}

func moneyOr0(v Money, ok bool) Money {
	if !ok {
		return 0
	}
	return v
}

func timeOrNull(v Micros, ok bool) Micros {
	if !ok {
		return NullTime
	}
	return v
}

// sym reads a low-cardinality text value without allocating when known.
func (v jv) sym() (Sym, bool, error) {
	if v.d == nil {
		if b, ok := v.plainStr(); ok {
			if string(b) == envelope.DebeziumUnavailable {
				return 0, false, errAbsent
			}
			return symOfBytes(b), true, nil
		}
		if v.isNull() {
			return symOf(""), false, nil
		}
		w, put := v.slow()
		defer put()
		return w.sym()
	}
	if v.d.Next() != jx.String {
		s, ok, err := v.str()
		return symOf(s), ok, err
	}
	b, err := v.d.StrBytes()
	if err != nil {
		return 0, false, err
	}
	if string(b) == envelope.DebeziumUnavailable {
		return 0, false, errAbsent
	}
	return symOfBytes(b), true, nil
}

// interned reads a low-cardinality text value as an interned string.
func (v jv) interned() (string, bool, error) {
	s, ok, err := v.sym()
	return s.String(), ok, err
}

// field bits of the parsed images
const (
	fID uint32 = 1 << iota
	f1
	f2
	f3
	f4
	f5
	f6
	f7
	f8
	f9
	f10
	f11
	f12
	f13
	f14
	f15

	// not fields: an "id" column was seen, or seen again (parse's id is
	// then what rawID reads only when it was seen once)
	fIDSeen uint32 = 1 << 30
	fIDDup  uint32 = 1 << 31
)

// seenID marks an "id" column in m.
func seenID(m *uint32) {
	if *m&fIDSeen != 0 {
		*m |= fIDDup
	}
	*m |= fIDSeen
}

func parseCustomer(raw []byte) (c Customer, m uint32, err error) {
	err = fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			seenID(&m)
			x, ok, err := v.int()
			return setOK(&c.ID, &m, fID, x, ok, err)
		case "name":
			x, _, err := v.str()
			return set(&c.Name, &m, f1, x, err)
		case "email":
			x, _, err := v.str()
			return set(&c.Email, &m, f2, x, err)
		case "phone":
			x, ok, err := v.str()
			return set(&c.Phone, &m, f3, NullString{S: x, Valid: ok}, err)
		case "segment":
			x, _, err := v.sym()
			return set(&c.Segment, &m, f4, x, err)
		case "region":
			x, _, err := v.sym()
			return set(&c.Region, &m, f5, x, err)
		case "country":
			x, _, err := v.sym()
			return set(&c.Country, &m, f6, x, err)
		case "city":
			x, _, err := v.sym()
			return set(&c.City, &m, f7, x, err)
		case "created_at":
			x, ok, err := v.time()
			return set(&c.CreatedAt, &m, f8, timeOrNull(x, ok), err)
		case "updated_at":
			x, ok, err := v.time()
			return set(&c.UpdatedAt, &m, f9, timeOrNull(x, ok), err)
		}
		return v.skip()
	})
	return c, m, err
}

// over returns prev with the fields of c marked in m.
func (c Customer) over(prev Customer, m uint32) Customer {
	if m&fID != 0 {
		prev.ID = c.ID
	}
	if m&f1 != 0 {
		prev.Name = c.Name
	}
	if m&f2 != 0 {
		prev.Email = c.Email
	}
	if m&f3 != 0 {
		prev.Phone = c.Phone
	}
	if m&f4 != 0 {
		prev.Segment = c.Segment
	}
	if m&f5 != 0 {
		prev.Region = c.Region
	}
	if m&f6 != 0 {
		prev.Country = c.Country
	}
	if m&f7 != 0 {
		prev.City = c.City
	}
	if m&f8 != 0 {
		prev.CreatedAt = c.CreatedAt
	}
	if m&f9 != 0 {
		prev.UpdatedAt = c.UpdatedAt
	}
	return prev
}

func customerFromJSON(raw []byte, prev Customer) (Customer, error) {
	c, m, err := parseCustomer(raw)
	return c.over(prev, m), err
}

func parseProduct(raw []byte) (p Product, m uint32, err error) {
	err = fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			seenID(&m)
			x, ok, err := v.int()
			return setOK(&p.ID, &m, fID, x, ok, err)
		case "sku":
			x, _, err := v.str()
			return set(&p.SKU, &m, f1, x, err)
		case "name":
			x, _, err := v.str()
			return set(&p.Name, &m, f2, x, err)
		case "category":
			x, _, err := v.sym()
			return set(&p.Category, &m, f3, x, err)
		case "price":
			x, ok, err := v.money()
			return set(&p.Price, &m, f4, moneyOr0(x, ok), err)
		case "currency":
			x, _, err := v.interned()
			return set(&p.Currency, &m, f5, x, err)
		case "created_at":
			x, ok, err := v.time()
			return set(&p.CreatedAt, &m, f6, timeOrNull(x, ok), err)
		case "updated_at":
			x, ok, err := v.time()
			return set(&p.UpdatedAt, &m, f7, timeOrNull(x, ok), err)
		}
		return v.skip()
	})
	return p, m, err
}

func (p Product) over(prev Product, m uint32) Product {
	if m&fID != 0 {
		prev.ID = p.ID
	}
	if m&f1 != 0 {
		prev.SKU = p.SKU
	}
	if m&f2 != 0 {
		prev.Name = p.Name
	}
	if m&f3 != 0 {
		prev.Category = p.Category
	}
	if m&f4 != 0 {
		prev.Price = p.Price
	}
	if m&f5 != 0 {
		prev.Currency = p.Currency
	}
	if m&f6 != 0 {
		prev.CreatedAt = p.CreatedAt
	}
	if m&f7 != 0 {
		prev.UpdatedAt = p.UpdatedAt
	}
	return prev
}

func productFromJSON(raw []byte, prev Product) (Product, error) {
	p, m, err := parseProduct(raw)
	return p.over(prev, m), err
}

func parseCampaign(raw []byte) (c Campaign, m uint32, err error) {
	err = fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			seenID(&m)
			x, ok, err := v.int()
			return setOK(&c.ID, &m, fID, x, ok, err)
		case "code":
			x, _, err := v.str()
			return set(&c.Code, &m, f1, x, err)
		case "name":
			x, _, err := v.str()
			return set(&c.Name, &m, f2, x, err)
		case "starts_at":
			x, ok, err := v.time()
			return set(&c.StartsAt, &m, f3, timeOrNull(x, ok), err)
		case "ends_at":
			x, ok, err := v.time()
			return set(&c.EndsAt, &m, f4, timeOrNull(x, ok), err)
		case "discount_percent":
			x, ok, err := v.money()
			return set(&c.DiscountPct, &m, f5, moneyOr0(x, ok), err)
		case "created_at":
			x, ok, err := v.time()
			return set(&c.CreatedAt, &m, f6, timeOrNull(x, ok), err)
		case "updated_at":
			x, ok, err := v.time()
			return set(&c.UpdatedAt, &m, f7, timeOrNull(x, ok), err)
		}
		return v.skip()
	})
	return c, m, err
}

func (c Campaign) over(prev Campaign, m uint32) Campaign {
	if m&fID != 0 {
		prev.ID = c.ID
	}
	if m&f1 != 0 {
		prev.Code = c.Code
	}
	if m&f2 != 0 {
		prev.Name = c.Name
	}
	if m&f3 != 0 {
		prev.StartsAt = c.StartsAt
	}
	if m&f4 != 0 {
		prev.EndsAt = c.EndsAt
	}
	if m&f5 != 0 {
		prev.DiscountPct = c.DiscountPct
	}
	if m&f6 != 0 {
		prev.CreatedAt = c.CreatedAt
	}
	if m&f7 != 0 {
		prev.UpdatedAt = c.UpdatedAt
	}
	return prev
}

func campaignFromJSON(raw []byte, prev Campaign) (Campaign, error) {
	c, m, err := parseCampaign(raw)
	return c.over(prev, m), err
}

func parseOrder(raw []byte) (o Order, m uint32, err error) {
	err = fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			seenID(&m)
			x, ok, err := v.int()
			return setOK(&o.ID, &m, fID, x, ok, err)
		case "customer_id":
			x, ok, err := v.int()
			return setOK(&o.CustomerID, &m, f1, x, ok, err)
		case "campaign_id":
			x, ok, err := v.int()
			return set(&o.CampaignID, &m, f2, NullInt{V: x, Valid: ok}, err)
		case "status":
			x, _, err := v.sym()
			return set(&o.Status, &m, f3, x, err)
		case "currency":
			x, _, err := v.sym()
			return set(&o.Currency, &m, f4, x, err)
		case "subtotal":
			x, ok, err := v.money()
			return set(&o.Subtotal, &m, f5, moneyOr0(x, ok), err)
		case "discount":
			x, ok, err := v.money()
			return set(&o.Discount, &m, f6, moneyOr0(x, ok), err)
		case "total":
			x, ok, err := v.money()
			return set(&o.Total, &m, f7, moneyOr0(x, ok), err)
		case "placed_at":
			x, ok, err := v.time()
			return set(&o.PlacedAt, &m, f8, timeOrNull(x, ok), err)
		case "paid_at":
			x, ok, err := v.time()
			return set(&o.PaidAt, &m, f9, timeOrNull(x, ok), err)
		case "shipped_at":
			x, ok, err := v.time()
			return set(&o.ShippedAt, &m, f10, timeOrNull(x, ok), err)
		case "delivered_at":
			x, ok, err := v.time()
			return set(&o.DeliveredAt, &m, f11, timeOrNull(x, ok), err)
		case "cancelled_at":
			x, ok, err := v.time()
			return set(&o.CancelledAt, &m, f12, timeOrNull(x, ok), err)
		case "refunded_at":
			x, ok, err := v.time()
			return set(&o.RefundedAt, &m, f13, timeOrNull(x, ok), err)
		case "created_at":
			x, ok, err := v.time()
			return set(&o.CreatedAt, &m, f14, timeOrNull(x, ok), err)
		case "updated_at":
			x, ok, err := v.time()
			return set(&o.UpdatedAt, &m, f15, timeOrNull(x, ok), err)
		}
		return v.skip()
	})
	return o, m, err
}

func (o Order) over(prev Order, m uint32) Order {
	if m&fID != 0 {
		prev.ID = o.ID
	}
	if m&f1 != 0 {
		prev.CustomerID = o.CustomerID
	}
	if m&f2 != 0 {
		prev.CampaignID = o.CampaignID
	}
	if m&f3 != 0 {
		prev.Status = o.Status
	}
	if m&f4 != 0 {
		prev.Currency = o.Currency
	}
	if m&f5 != 0 {
		prev.Subtotal = o.Subtotal
	}
	if m&f6 != 0 {
		prev.Discount = o.Discount
	}
	if m&f7 != 0 {
		prev.Total = o.Total
	}
	if m&f8 != 0 {
		prev.PlacedAt = o.PlacedAt
	}
	if m&f9 != 0 {
		prev.PaidAt = o.PaidAt
	}
	if m&f10 != 0 {
		prev.ShippedAt = o.ShippedAt
	}
	if m&f11 != 0 {
		prev.DeliveredAt = o.DeliveredAt
	}
	if m&f12 != 0 {
		prev.CancelledAt = o.CancelledAt
	}
	if m&f13 != 0 {
		prev.RefundedAt = o.RefundedAt
	}
	if m&f14 != 0 {
		prev.CreatedAt = o.CreatedAt
	}
	if m&f15 != 0 {
		prev.UpdatedAt = o.UpdatedAt
	}
	return prev
}

func orderFromJSON(raw []byte, prev Order) (Order, error) {
	o, m, err := parseOrder(raw)
	return o.over(prev, m), err
}

func parseItem(raw []byte) (it Item, m uint32, err error) {
	err = fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			seenID(&m)
			x, ok, err := v.int()
			return setOK(&it.ID, &m, fID, x, ok, err)
		case "order_id":
			x, ok, err := v.int()
			return setOK(&it.OrderID, &m, f1, x, ok, err)
		case "line_no":
			x, ok, err := v.int()
			return setOK(&it.LineNo, &m, f2, int32(x), ok, err)
		case "product_id":
			x, ok, err := v.int()
			return setOK(&it.ProductID, &m, f3, x, ok, err)
		case "quantity":
			x, ok, err := v.int()
			return setOK(&it.Quantity, &m, f4, int32(x), ok, err)
		case "unit_price":
			x, ok, err := v.money()
			return set(&it.UnitPrice, &m, f5, moneyOr0(x, ok), err)
		case "discount":
			x, ok, err := v.money()
			return set(&it.Discount, &m, f6, moneyOr0(x, ok), err)
		case "created_at":
			x, ok, err := v.time()
			return set(&it.CreatedAt, &m, f7, timeOrNull(x, ok), err)
		case "updated_at":
			x, ok, err := v.time()
			return set(&it.UpdatedAt, &m, f8, timeOrNull(x, ok), err)
		}
		return v.skip()
	})
	return it, m, err
}

func (it Item) over(prev Item, m uint32) Item {
	if m&fID != 0 {
		prev.ID = it.ID
	}
	if m&f1 != 0 {
		prev.OrderID = it.OrderID
	}
	if m&f2 != 0 {
		prev.LineNo = it.LineNo
	}
	if m&f3 != 0 {
		prev.ProductID = it.ProductID
	}
	if m&f4 != 0 {
		prev.Quantity = it.Quantity
	}
	if m&f5 != 0 {
		prev.UnitPrice = it.UnitPrice
	}
	if m&f6 != 0 {
		prev.Discount = it.Discount
	}
	if m&f7 != 0 {
		prev.CreatedAt = it.CreatedAt
	}
	if m&f8 != 0 {
		prev.UpdatedAt = it.UpdatedAt
	}
	return prev
}

func itemFromJSON(raw []byte, prev Item) (Item, error) {
	it, m, err := parseItem(raw)
	return it.over(prev, m), err
}

// rawID reads the "id" column of a row image (0, false when absent). It
// stops at the first non-null "id" (the image was validated as JSON when it
// was cut out of the envelope); it iterates rather than returning an error
// from a callback, which jx wraps with a stack trace.
func rawID(raw []byte) (int64, bool) {
	d := jx.GetDecoder()
	defer jx.PutDecoder(d)
	d.ResetBytes(raw)
	it, err := d.ObjIter()
	if err != nil {
		return 0, false
	}
	for it.Next() {
		if string(it.Key()) == "id" {
			id, ok, err := jv{d: d}.int()
			if err != nil {
				return 0, false
			}
			if ok {
				return id, true
			}
			continue
		}
		if d.Skip() != nil {
			return 0, false
		}
	}
	return 0, false
}
