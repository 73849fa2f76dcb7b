package chdb

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// chType is a parsed ClickHouse type name.
type chType struct {
	kind  kind     // what the encoder and decoder switch on
	raw   string   // the type as ClickHouse spells it
	name  string   // base name: Int32, String, Nullable, Array, DateTime64, Decimal, Enum8, ...
	args  []string // raw arguments, e.g. ["3", "'UTC'"] for DateTime64(3, 'UTC')
	elem  *chType  // Nullable/Array/LowCardinality element
	scale int      // Decimal scale, DateTime64 precision
	width int      // Decimal bytes (4, 8, 16, 32), FixedString length
	loc   *time.Location
	enum  map[string]int16
}

// parseType parses names like "Nullable(DateTime64(3, 'UTC'))".
func parseType(s string) (*chType, error) {
	s = strings.TrimSpace(s)
	t := &chType{raw: s, name: s, loc: time.UTC}
	open := strings.IndexByte(s, '(')
	if open >= 0 {
		if !strings.HasSuffix(s, ")") {
			return nil, fmt.Errorf("malformed type %q", s)
		}
		t.name = s[:open]
		t.args = splitArgs(s[open+1 : len(s)-1])
	}
	var err error
	switch t.name {
	case "Nullable", "Array", "LowCardinality":
		if len(t.args) != 1 {
			return nil, fmt.Errorf("malformed type %q", s)
		}
		t.elem, err = parseType(t.args[0])
	case "DateTime":
		if len(t.args) == 1 {
			t.loc, err = loadLoc(t.args[0])
		}
	case "DateTime64":
		if len(t.args) < 1 {
			return nil, fmt.Errorf("malformed type %q", s)
		}
		if t.scale, err = strconv.Atoi(t.args[0]); err == nil && len(t.args) == 2 {
			t.loc, err = loadLoc(t.args[1])
		}
	case "Decimal":
		if len(t.args) != 2 {
			return nil, fmt.Errorf("malformed type %q", s)
		}
		var p int
		if p, err = strconv.Atoi(t.args[0]); err == nil {
			t.scale, err = strconv.Atoi(t.args[1])
			t.width = decimalWidth(p)
		}
	case "Decimal32", "Decimal64", "Decimal128", "Decimal256":
		if len(t.args) != 1 {
			return nil, fmt.Errorf("malformed type %q", s)
		}
		t.scale, err = strconv.Atoi(t.args[0])
		bits, _ := strconv.Atoi(strings.TrimPrefix(t.name, "Decimal"))
		t.width = bits / 8
		t.name = "Decimal"
	case "FixedString":
		if len(t.args) != 1 {
			return nil, fmt.Errorf("malformed type %q", s)
		}
		t.width, err = strconv.Atoi(t.args[0])
	case "Enum8", "Enum16":
		t.enum = map[string]int16{}
		for _, a := range t.args {
			i := strings.LastIndexByte(a, '=')
			if i < 0 {
				return nil, fmt.Errorf("malformed type %q", s)
			}
			name, err := unquote(strings.TrimSpace(a[:i]))
			if err != nil {
				return nil, fmt.Errorf("malformed type %q: %w", s, err)
			}
			v, err := strconv.ParseInt(strings.TrimSpace(a[i+1:]), 10, 16)
			if err != nil {
				return nil, fmt.Errorf("malformed type %q: %w", s, err)
			}
			t.enum[name] = int16(v)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("type %q: %w", s, err)
	}
	t.kind = kinds[t.name]
	return t, nil
}

type kind uint8

const (
	kUnsupported kind = iota
	kInt8
	kInt16
	kInt32
	kInt64
	kUInt8
	kUInt16
	kUInt32
	kUInt64
	kFloat32
	kFloat64
	kBool
	kString
	kFixedString
	kUUID
	kDate
	kDate32
	kDateTime
	kDateTime64
	kDecimal
	kEnum8
	kEnum16
	kNullable
	kArray
	kLowCardinality
)

var kinds = map[string]kind{
	"Int8": kInt8, "Int16": kInt16, "Int32": kInt32, "Int64": kInt64,
	"UInt8": kUInt8, "UInt16": kUInt16, "UInt32": kUInt32, "UInt64": kUInt64,
	"Float32": kFloat32, "Float64": kFloat64, "Bool": kBool, "String": kString,
	"FixedString": kFixedString, "UUID": kUUID, "Date": kDate, "Date32": kDate32,
	"DateTime": kDateTime, "DateTime64": kDateTime64, "Decimal": kDecimal,
	"Enum8": kEnum8, "Enum16": kEnum16, "Nullable": kNullable, "Array": kArray,
	"LowCardinality": kLowCardinality,
}

func decimalWidth(precision int) int {
	switch {
	case precision <= 9:
		return 4
	case precision <= 18:
		return 8
	case precision <= 38:
		return 16
	default:
		return 32
	}
}

func loadLoc(arg string) (*time.Location, error) {
	name, err := unquote(strings.TrimSpace(arg))
	if err != nil {
		return nil, err
	}
	return time.LoadLocation(name)
}

// splitArgs splits a type's argument list at top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, start, inQuote := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inQuote = false
			}
		case c == '\'':
			inQuote = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// unquote reads a single-quoted ClickHouse string literal.
func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", fmt.Errorf("not a quoted string: %s", s)
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s)-1 {
			i++
			switch s[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case '0':
				c = 0
			default:
				c = s[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}
