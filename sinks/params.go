package sinks

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// FormatParam renders a Go value as the text of a ClickHouse query
// parameter ({name:Type}). The engine parses the text as the placeholder's
// type, so the value never becomes SQL. Strings are sent as given (escaped
// for the parameter wire format); time.Time is sent in UTC ("2006-01-02" at
// midnight, else "2006-01-02 15:04:05.999999999"); slices become arrays.
func FormatParam(v any) (string, error) {
	var b strings.Builder
	if err := formatParam(&b, v, false); err != nil {
		return "", err
	}
	return b.String(), nil
}

// formatParam writes v; inArray selects the quoted form used inside arrays.
func formatParam(b *strings.Builder, v any, inArray bool) error {
	switch x := v.(type) {
	case nil:
		if inArray {
			b.WriteString("NULL")
		} else {
			b.WriteString(`\N`)
		}
	case string:
		if inArray {
			quoteString(b, x)
		} else {
			escapeString(b, x)
		}
	case []byte:
		return formatParam(b, string(x), inArray)
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int8:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int16:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint8:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint16:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case float32:
		return formatParam(b, float64(x), inArray)
	case float64:
		switch {
		case math.IsNaN(x):
			b.WriteString("nan")
		case math.IsInf(x, 1):
			b.WriteString("inf")
		case math.IsInf(x, -1):
			b.WriteString("-inf")
		default:
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		}
	case time.Time:
		s := FormatTime(x)
		if inArray {
			quoteString(b, s)
		} else {
			b.WriteString(s)
		}
	case fmt.Stringer:
		return formatParam(b, x.String(), inArray)
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return fmt.Errorf("unsupported parameter type %T", v)
		}
		b.WriteByte('[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			e := rv.Index(i).Interface()
			if e == nil {
				b.WriteString("NULL")
				continue
			}
			if err := formatParam(b, e, true); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	}
	return nil
}

// FormatTime renders t in UTC the way ClickHouse parses Date, DateTime and
// DateTime64 text: the date alone at midnight, else date and time with as
// many fractional digits as t has.
func FormatTime(t time.Time) string {
	t = t.UTC()
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02 15:04:05.999999999")
}

// escapeString escapes s for ClickHouse's Escaped (TSV) text format, the
// format query parameter values are parsed in.
func escapeString(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
}

// quoteString writes s as a single-quoted ClickHouse string literal, the form
// of strings inside an array value.
func quoteString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}

// QuoteString renders s as a single-quoted ClickHouse string literal.
func QuoteString(s string) string {
	var b strings.Builder
	quoteString(&b, s)
	return b.String()
}

// QuoteIdent quotes a ClickHouse identifier with backticks.
func QuoteIdent(name string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(name) + "`"
}

// QualifiedTable quotes table, qualifying it with db unless it already names
// a database ("db.table").
func QualifiedTable(db, table string) string {
	if d, t, ok := strings.Cut(table, "."); ok && !strings.Contains(table, "`") {
		return QuoteIdent(d) + "." + QuoteIdent(t)
	}
	return QuoteIdent(db) + "." + QuoteIdent(table)
}
