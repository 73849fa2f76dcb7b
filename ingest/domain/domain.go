// Package domain holds the rules of the command side that the command API
// (ingest/api) and the workload generator's direct path (ingest/load) share:
// the vocabulary (segments, regions, order statuses), field validation, money
// arithmetic, order pricing and the order status machine. It is pure: no I/O,
// no clock; callers pass "now".
package domain

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Customer segments, lowest to highest tier. Upgrades move one step right.
var Segments = []string{"bronze", "silver", "gold", "platinum"}

// Regions a customer can live in.
var Regions = []string{"north_america", "europe", "asia_pacific", "latin_america", "middle_east_africa"}

// NextSegment returns the tier above s and whether there is one.
func NextSegment(s string) (string, bool) {
	for i, v := range Segments {
		if v == s && i+1 < len(Segments) {
			return Segments[i+1], true
		}
	}
	return "", false
}

func member(s string, set []string) bool {
	for _, v := range set {
		if v == s {
			return true
		}
	}
	return false
}

// FieldError is one field-level reason a command is rejected. Pointer is a
// JSON Pointer (RFC 6901) into the request body, e.g. "/items/0/quantity".
type FieldError struct {
	Pointer string `json:"pointer"`
	Reason  string `json:"reason"` // machine-readable: required, format, range, enum, length, type, unknown_field, not_found, ...
	Detail  string `json:"detail"`
}

// Reasons used in FieldError.
const (
	ReasonRequired     = "required"
	ReasonFormat       = "format"
	ReasonRange        = "range"
	ReasonEnum         = "enum"
	ReasonLength       = "length"
	ReasonType         = "type"
	ReasonUnknownField = "unknown_field"
	ReasonNotFound     = "not_found"
	ReasonDuplicate    = "duplicate"
	ReasonInactive     = "inactive"
	ReasonMismatch     = "mismatch"
)

// Errors collects FieldErrors.
type Errors []FieldError

func (e *Errors) add(ptr, reason, format string, a ...any) {
	*e = append(*e, FieldError{Pointer: ptr, Reason: reason, Detail: fmt.Sprintf(format, a...)})
}

// Error implements error.
func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Pointer + ": " + f.Detail
	}
	return strings.Join(parts, "; ")
}

var (
	countryRe = regexp.MustCompile(`^[A-Z]{2}$`)
	phoneRe   = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{5,30}$`)
	skuRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	codeRe    = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{1,31}$`)
	currRe    = regexp.MustCompile(`^[A-Z]{3}$`)
)

// CustomerFields are the writable attributes of a customer. In an update a
// nil field is left unchanged.
type CustomerFields struct {
	Name    *string
	Email   *string
	Phone   *string
	Segment *string
	Region  *string
	Country *string
	City    *string
}

// NormalizeEmail is the stored form of an email address (trimmed, lower case).
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func text(errs *Errors, ptr string, s *string, required bool, maxLen int) {
	if s == nil {
		if required {
			errs.add(ptr, ReasonRequired, "is required")
		}
		return
	}
	n := utf8.RuneCountInString(strings.TrimSpace(*s))
	if n == 0 {
		errs.add(ptr, ReasonLength, "must not be empty")
	} else if n > maxLen {
		errs.add(ptr, ReasonLength, "must be at most %d characters", maxLen)
	}
}

// ValidateCustomer checks a create (create=true: name, email, segment,
// region, country and city are required) or a partial update.
func ValidateCustomer(c CustomerFields, create bool) Errors {
	var errs Errors
	text(&errs, "/name", c.Name, create, 200)
	text(&errs, "/email", c.Email, create, 254)
	if c.Email != nil && strings.TrimSpace(*c.Email) != "" {
		if a, err := mail.ParseAddress(*c.Email); err != nil || a.Address != strings.TrimSpace(*c.Email) || !strings.Contains(a.Address, "@") {
			errs.add("/email", ReasonFormat, "must be a plain address like name@example.com")
		}
	}
	if c.Phone != nil && !phoneRe.MatchString(*c.Phone) {
		errs.add("/phone", ReasonFormat, "must be digits, spaces, ()- with an optional leading +")
	}
	if c.Segment == nil {
		if create {
			errs.add("/segment", ReasonRequired, "is required")
		}
	} else if !member(*c.Segment, Segments) {
		errs.add("/segment", ReasonEnum, "must be one of %s", strings.Join(Segments, ", "))
	}
	if c.Region == nil {
		if create {
			errs.add("/region", ReasonRequired, "is required")
		}
	} else if !member(*c.Region, Regions) {
		errs.add("/region", ReasonEnum, "must be one of %s", strings.Join(Regions, ", "))
	}
	if c.Country == nil {
		if create {
			errs.add("/country", ReasonRequired, "is required")
		}
	} else if !countryRe.MatchString(*c.Country) {
		errs.add("/country", ReasonFormat, "must be an ISO 3166-1 alpha-2 code in upper case, e.g. DE")
	}
	text(&errs, "/city", c.City, create, 100)
	return errs
}

// Product is a catalogue entry as created.
type Product struct {
	SKU      string
	Name     string
	Category string
	Price    Money
	Currency string
}

// ValidateProduct checks a product to create. Missing fields arrive as
// zero values; the caller reports "required" for absent JSON members first.
func ValidateProduct(p Product) Errors {
	var errs Errors
	if !skuRe.MatchString(p.SKU) {
		errs.add("/sku", ReasonFormat, "must be 1-64 letters, digits, _ or -, starting with a letter or digit")
	}
	text(&errs, "/name", &p.Name, true, 200)
	text(&errs, "/category", &p.Category, true, 100)
	if p.Price <= 0 {
		errs.add("/price", ReasonRange, "must be greater than 0")
	} else if p.Price > MaxMoney {
		errs.add("/price", ReasonRange, "must be at most %s", MaxMoney)
	}
	if !currRe.MatchString(p.Currency) {
		errs.add("/currency", ReasonFormat, "must be an ISO 4217 code in upper case, e.g. USD")
	}
	return errs
}

// Campaign is a discount campaign as created.
type Campaign struct {
	Code            string
	Name            string
	StartsAt        time.Time
	EndsAt          time.Time
	DiscountPercent Percent
}

// ValidateCampaign checks a campaign to create.
func ValidateCampaign(c Campaign) Errors {
	var errs Errors
	if !codeRe.MatchString(c.Code) {
		errs.add("/code", ReasonFormat, "must be 2-32 upper-case letters, digits, _ or -")
	}
	text(&errs, "/name", &c.Name, true, 200)
	if c.StartsAt.IsZero() {
		errs.add("/starts_at", ReasonRequired, "is required")
	}
	if c.EndsAt.IsZero() {
		errs.add("/ends_at", ReasonRequired, "is required")
	}
	if !c.StartsAt.IsZero() && !c.EndsAt.IsZero() && !c.EndsAt.After(c.StartsAt) {
		errs.add("/ends_at", ReasonRange, "must be after starts_at")
	}
	if c.DiscountPercent <= 0 || c.DiscountPercent >= 10000 {
		errs.add("/discount_percent", ReasonRange, "must be greater than 0 and less than 100")
	}
	return errs
}

// Active reports whether the campaign window [starts_at, ends_at) contains now.
func Active(startsAt, endsAt, now time.Time) bool {
	return !now.Before(startsAt) && now.Before(endsAt)
}

// MaxItems is the most lines an order may have; MaxQuantity the most units per line.
const (
	MaxItems    = 100
	MaxQuantity = 1000
)

// ValidateQuantity checks one line's quantity.
func ValidateQuantity(errs *Errors, ptr string, q int64) {
	if q <= 0 {
		errs.add(ptr, ReasonRange, "must be greater than 0")
	} else if q > MaxQuantity {
		errs.add(ptr, ReasonRange, "must be at most %d", MaxQuantity)
	}
}

// Line is one priced order line.
type Line struct {
	ProductID int64
	Quantity  int64
	UnitPrice Money
	Discount  Money // campaign discount on the whole line
}

// Totals are an order's server-side amounts: Total = Subtotal - Discount.
type Totals struct {
	Subtotal Money
	Discount Money
	Total    Money
}

// Price computes line discounts and order totals. pct is the campaign
// discount (0 without a campaign). Each line's discount is
// round_half_up(unit_price * quantity * pct), the order's discount is the sum
// of its lines' discounts, so lines always add up to the order.
func Price(lines []Line, pct Percent) (Totals, error) {
	var t Totals
	for i := range lines {
		l := &lines[i]
		if l.Quantity <= 0 || l.UnitPrice <= 0 {
			return Totals{}, fmt.Errorf("line %d: quantity and unit price must be positive", i)
		}
		gross := l.UnitPrice * Money(l.Quantity)
		l.Discount = pct.Of(gross)
		t.Subtotal += gross
		t.Discount += l.Discount
	}
	t.Total = t.Subtotal - t.Discount
	if t.Subtotal > MaxMoney {
		return Totals{}, fmt.Errorf("order subtotal %s exceeds %s", t.Subtotal, MaxMoney)
	}
	return t, nil
}
