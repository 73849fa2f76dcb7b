package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Money is an amount in cents (hundredths of the currency unit), matching
// PostgreSQL numeric(12,2).
type Money int64

// MaxMoney is the largest amount numeric(12,2) holds.
const MaxMoney Money = 9_999_999_999_99

// String formats m as "1234.50".
func (m Money) String() string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%02d", sign, int64(m/100), int64(m%100))
}

// ParseMoney parses "12", "12.3" or "12.34" (at most two decimals, optional
// leading minus). It rejects exponents, more decimals and non-numbers.
func ParseMoney(s string) (Money, error) {
	c, err := parseFixed(s, 2)
	return Money(c), err
}

func parseFixed(s string, decimals int) (int64, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") || len(frac) > decimals || len(intPart) > 15 {
		return 0, fmt.Errorf("%q is not a decimal with at most %d decimal places", orig, decimals)
	}
	for _, r := range intPart + frac {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a decimal with at most %d decimal places", orig, decimals)
		}
	}
	for len(frac) < decimals {
		frac += "0"
	}
	n, err := strconv.ParseInt(intPart+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", orig, err)
	}
	if neg {
		n = -n
	}
	return n, nil
}

// MarshalJSON writes money as a JSON string ("12.34"), exact for clients.
func (m Money) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON accepts a JSON string ("12.34") or number (12.34).
func (m *Money) UnmarshalJSON(b []byte) error {
	s, err := unquoteNumber(b)
	if err != nil {
		return err
	}
	v, err := ParseMoney(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Percent is a percentage in hundredths of a percent (basis points):
// 1250 = 12.50 %, matching numeric(5,2).
type Percent int64

// String formats p as "12.50".
func (p Percent) String() string { return Money(p).String() }

// ParsePercent parses "12.5" as 1250.
func ParsePercent(s string) (Percent, error) {
	c, err := parseFixed(s, 2)
	return Percent(c), err
}

// Of returns p percent of m, rounded half up to the cent.
func (p Percent) Of(m Money) Money {
	return Money((int64(m)*int64(p) + 5000) / 10000)
}

// MarshalJSON writes the percentage as a JSON string ("12.50").
func (p Percent) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON accepts a JSON string or number.
func (p *Percent) UnmarshalJSON(b []byte) error {
	s, err := unquoteNumber(b)
	if err != nil {
		return err
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

var errNotDecimal = errors.New("must be a decimal number or a string holding one")

func unquoteNumber(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return "", errNotDecimal
	}
	if strings.HasPrefix(s, `"`) {
		var u string
		if err := json.Unmarshal([]byte(s), &u); err != nil {
			return "", errNotDecimal
		}
		return u, nil
	}
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return "", errNotDecimal
	}
	return s, nil
}
