package queries

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Formats a result can be written in.
var Formats = []string{"table", "csv", "json"}

// Write writes res in format: "table" (aligned, for a terminal), "csv"
// (header row, RFC 4180) or "json" (an object with the report, its
// parameters, typed columns and rows as objects; integers and decimals are
// JSON numbers with every digit kept).
func Write(w io.Writer, res *Result, format string) error {
	switch format {
	case "table", "":
		return WriteTable(w, res)
	case "csv":
		return WriteCSV(w, res)
	case "json":
		return WriteJSON(w, res)
	}
	return fmt.Errorf("unknown format %q (use table, csv or json)", format)
}

// baseType strips Nullable(...) and LowCardinality(...).
func baseType(t string) string {
	for {
		switch {
		case strings.HasPrefix(t, "Nullable(") && strings.HasSuffix(t, ")"):
			t = t[len("Nullable(") : len(t)-1]
		case strings.HasPrefix(t, "LowCardinality(") && strings.HasSuffix(t, ")"):
			t = t[len("LowCardinality(") : len(t)-1]
		default:
			return t
		}
	}
}

// text renders one value as text (NULL as "").
func text(v any, typ string) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return padDecimal(x, typ)
	case time.Time:
		x = x.UTC()
		bt := baseType(typ)
		switch {
		case bt == "Date" || bt == "Date32":
			return x.Format(time.DateOnly)
		case strings.HasPrefix(bt, "DateTime64"):
			return x.Format("2006-01-02 15:04:05.999999")
		default:
			return x.Format(time.DateTime)
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = text(e, "")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

func numeric(typ string) bool {
	bt := baseType(typ)
	return strings.HasPrefix(bt, "Int") || strings.HasPrefix(bt, "UInt") || strings.HasPrefix(bt, "Float") || strings.HasPrefix(bt, "Decimal")
}

// WriteTable writes an aligned text table (numbers right-aligned, NULL shown
// as NULL) followed by the row count (and, for a truncated analyst SQL
// result, that it was cut).
func WriteTable(w io.Writer, res *Result) error {
	cells := make([][]string, len(res.Rows))
	width := make([]int, len(res.Columns))
	for i, c := range res.Columns {
		width[i] = utf8.RuneCountInString(c)
	}
	for r, row := range res.Rows {
		cells[r] = make([]string, len(row))
		for i, v := range row {
			s := "NULL"
			if v != nil {
				s = text(v, typeOf(res, i))
			}
			cells[r][i] = s
			if n := utf8.RuneCountInString(s); n > width[i] {
				width[i] = n
			}
		}
	}
	var b strings.Builder
	line := func(vals []string, header bool) {
		for i, s := range vals {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
			if !header && numeric(typeOf(res, i)) {
				b.WriteString(pad + s)
			} else if i == len(vals)-1 {
				b.WriteString(s)
			} else {
				b.WriteString(s + pad)
			}
		}
		b.WriteByte('\n')
	}
	line(res.Columns, true)
	seps := make([]string, len(res.Columns))
	for i := range seps {
		seps[i] = strings.Repeat("-", width[i])
	}
	line(seps, true)
	for _, r := range cells {
		line(r, false)
	}
	if res.Truncated {
		fmt.Fprintf(&b, "(%d rows; TRUNCATED: the result has more rows than the limit of %d)\n", len(res.Rows), res.MaxRows)
	} else {
		fmt.Fprintf(&b, "(%d rows)\n", len(res.Rows))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func typeOf(res *Result, i int) string {
	if i < len(res.Types) {
		return res.Types[i]
	}
	return ""
}

// WriteCSV writes a header row and one row per result row (NULL is empty).
func WriteCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(res.Columns); err != nil {
		return err
	}
	rec := make([]string, len(res.Columns))
	for _, row := range res.Rows {
		for i, v := range row {
			rec[i] = text(v, typeOf(res, i))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonValue renders a value for JSON: numbers (decimals and 64-bit integers
// with every digit) as json.Number, times as text, NULL as null.
func jsonValue(v any, typ string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case uint64:
		return json.Number(strconv.FormatUint(x, 10))
	case string:
		if strings.HasPrefix(baseType(typ), "Decimal") {
			if _, err := strconv.ParseFloat(x, 64); err == nil {
				return json.Number(padDecimal(x, typ))
			}
		}
		return x
	case time.Time:
		return text(x, typ)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, "")
		}
		return out
	default:
		return x
	}
}

// JSONColumn describes a column in JSON output.
type JSONColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// JSONResult is the JSON output's shape.
type JSONResult struct {
	Report string            `json:"report,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	// @rollup reports: the months [first, end) read from the monthly rollup
	RollupMonths []string         `json:"rollup_months,omitempty"`
	Columns      []JSONColumn     `json:"columns"`
	Rows         []map[string]any `json:"rows"`
	// analyst SQL only: the row limit, and whether the result was cut to it
	MaxRows   int   `json:"max_rows,omitempty"`
	Truncated *bool `json:"truncated,omitempty"`
}

// ToJSON converts res to its JSON shape.
func ToJSON(res *Result) JSONResult {
	out := JSONResult{Report: res.Report, Params: res.Params, RollupMonths: res.RollupMonths, Columns: make([]JSONColumn, len(res.Columns)), Rows: make([]map[string]any, len(res.Rows))}
	if res.MaxRows > 0 {
		out.MaxRows, out.Truncated = res.MaxRows, &res.Truncated
	}
	for i, c := range res.Columns {
		out.Columns[i] = JSONColumn{Name: c, Type: typeOf(res, i)}
	}
	for r, row := range res.Rows {
		m := make(map[string]any, len(row))
		for i, v := range row {
			m[res.Columns[i]] = jsonValue(v, typeOf(res, i))
		}
		out.Rows[r] = m
	}
	return out
}

// WriteJSON writes res as one JSON object (see Write).
func WriteJSON(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ToJSON(res))
}

// decimalScaleRe finds the scale of Decimal(P, S) and DecimalNN(S).
var decimalScaleRe = regexp.MustCompile(`^Decimal(?:\d+)?\((?:\d+,\s*)?(\d+)\)$`)

// padDecimal writes a Decimal value with its type's scale ("48.5" in a
// Decimal(38, 2) column is "48.50"); other values are returned as is.
func padDecimal(s, typ string) string {
	m := decimalScaleRe.FindStringSubmatch(baseType(typ))
	if m == nil {
		return s
	}
	scale, _ := strconv.Atoi(m[1])
	if scale == 0 || strings.ContainsAny(s, "eE") {
		return s
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) >= scale {
		return s
	}
	return intPart + "." + frac + strings.Repeat("0", scale-len(frac))
}
