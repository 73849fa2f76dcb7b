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

// jv reads one JSON value; absent reports a TOAST placeholder.
type jv struct {
	d *jx.Decoder
}

var errAbsent = errors.New("absent")

func (v jv) str() (string, bool, error) {
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
	if day > 28 && day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
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
	secs := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).Unix()
	return Micros(secs*1_000_000 + micros), true
}

func (v jv) time() (Micros, bool, error) {
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

// fields walks an image's columns; set returns the column's error.
func fields(raw []byte, set func(col []byte, v jv) error) error {
	d := jx.GetDecoder()
	defer jx.PutDecoder(d)
	d.ResetBytes(raw)
	var colErr error
	err := d.ObjBytes(func(d *jx.Decoder, key []byte) error {
		if err := set(key, jv{d}); err != nil && !errors.Is(err, errAbsent) {
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

func setInt(p *int64) func(int64, bool, error) error {
	return func(v int64, ok bool, err error) error {
		if err == nil && ok {
			*p = v
		}
		return err
	}
}

func setStr(p *string) func(string, bool, error) error {
	return func(v string, _ bool, err error) error {
		if err == nil {
			*p = v
		}
		return err
	}
}

func setSym(p *Sym) func(Sym, bool, error) error {
	return func(v Sym, _ bool, err error) error {
		if err == nil {
			*p = v
		}
		return err
	}
}

// sym reads a low-cardinality text value without allocating when known.
func (v jv) sym() (Sym, bool, error) {
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

func setMoney(p *Money) func(Money, bool, error) error {
	return func(v Money, ok bool, err error) error {
		if err == nil {
			*p = 0
			if ok {
				*p = v
			}
		}
		return err
	}
}

func setTime(p *Micros) func(Micros, bool, error) error {
	return func(v Micros, ok bool, err error) error {
		if err == nil {
			*p = NullTime
			if ok {
				*p = v
			}
		}
		return err
	}
}

func setNullInt(p *NullInt) func(int64, bool, error) error {
	return func(v int64, ok bool, err error) error {
		if err == nil {
			*p = NullInt{V: v, Valid: ok}
		}
		return err
	}
}

func setInt32(p *int32) func(int64, bool, error) error {
	return func(v int64, ok bool, err error) error {
		if err == nil && ok {
			*p = int32(v)
		}
		return err
	}
}

func customerFromJSON(raw []byte, c Customer) (Customer, error) {
	err := fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			return setInt(&c.ID)(v.int())
		case "name":
			return setStr(&c.Name)(v.str())
		case "email":
			return setStr(&c.Email)(v.str())
		case "phone":
			s, ok, err := v.str()
			if err == nil {
				c.Phone = NullString{S: s, Valid: ok}
			}
			return err
		case "segment":
			return setSym(&c.Segment)(v.sym())
		case "region":
			return setSym(&c.Region)(v.sym())
		case "country":
			return setSym(&c.Country)(v.sym())
		case "city":
			return setSym(&c.City)(v.sym())
		case "created_at":
			return setTime(&c.CreatedAt)(v.time())
		case "updated_at":
			return setTime(&c.UpdatedAt)(v.time())
		}
		return v.d.Skip()
	})
	return c, err
}

func productFromJSON(raw []byte, p Product) (Product, error) {
	err := fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			return setInt(&p.ID)(v.int())
		case "sku":
			return setStr(&p.SKU)(v.str())
		case "name":
			return setStr(&p.Name)(v.str())
		case "category":
			return setSym(&p.Category)(v.sym())
		case "price":
			return setMoney(&p.Price)(v.money())
		case "currency":
			return setStr(&p.Currency)(v.interned())
		case "created_at":
			return setTime(&p.CreatedAt)(v.time())
		case "updated_at":
			return setTime(&p.UpdatedAt)(v.time())
		}
		return v.d.Skip()
	})
	return p, err
}

func campaignFromJSON(raw []byte, c Campaign) (Campaign, error) {
	err := fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			return setInt(&c.ID)(v.int())
		case "code":
			return setStr(&c.Code)(v.str())
		case "name":
			return setStr(&c.Name)(v.str())
		case "starts_at":
			return setTime(&c.StartsAt)(v.time())
		case "ends_at":
			return setTime(&c.EndsAt)(v.time())
		case "discount_percent":
			return setMoney(&c.DiscountPct)(v.money())
		case "created_at":
			return setTime(&c.CreatedAt)(v.time())
		case "updated_at":
			return setTime(&c.UpdatedAt)(v.time())
		}
		return v.d.Skip()
	})
	return c, err
}

func orderFromJSON(raw []byte, o Order) (Order, error) {
	err := fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			return setInt(&o.ID)(v.int())
		case "customer_id":
			return setInt(&o.CustomerID)(v.int())
		case "campaign_id":
			return setNullInt(&o.CampaignID)(v.int())
		case "status":
			return setStr(&o.Status)(v.interned())
		case "currency":
			return setStr(&o.Currency)(v.interned())
		case "subtotal":
			return setMoney(&o.Subtotal)(v.money())
		case "discount":
			return setMoney(&o.Discount)(v.money())
		case "total":
			return setMoney(&o.Total)(v.money())
		case "placed_at":
			return setTime(&o.PlacedAt)(v.time())
		case "paid_at":
			return setTime(&o.PaidAt)(v.time())
		case "shipped_at":
			return setTime(&o.ShippedAt)(v.time())
		case "delivered_at":
			return setTime(&o.DeliveredAt)(v.time())
		case "cancelled_at":
			return setTime(&o.CancelledAt)(v.time())
		case "refunded_at":
			return setTime(&o.RefundedAt)(v.time())
		case "created_at":
			return setTime(&o.CreatedAt)(v.time())
		case "updated_at":
			return setTime(&o.UpdatedAt)(v.time())
		}
		return v.d.Skip()
	})
	return o, err
}

func itemFromJSON(raw []byte, it Item) (Item, error) {
	err := fields(raw, func(col []byte, v jv) error {
		switch string(col) {
		case "id":
			return setInt(&it.ID)(v.int())
		case "order_id":
			return setInt(&it.OrderID)(v.int())
		case "line_no":
			return setInt32(&it.LineNo)(v.int())
		case "product_id":
			return setInt(&it.ProductID)(v.int())
		case "quantity":
			return setInt32(&it.Quantity)(v.int())
		case "unit_price":
			return setMoney(&it.UnitPrice)(v.money())
		case "discount":
			return setMoney(&it.Discount)(v.money())
		case "created_at":
			return setTime(&it.CreatedAt)(v.time())
		case "updated_at":
			return setTime(&it.UpdatedAt)(v.time())
		}
		return v.d.Skip()
	})
	return it, err
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
			id, ok, err := jv{d}.int()
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
