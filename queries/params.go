package queries

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParamError is a bad, missing or unknown report parameter.
type ParamError struct {
	Report string
	Param  string
	Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("report %s: parameter %q: %s", e.Report, e.Param, e.Reason)
}

// paramTypes are the ClickHouse types a report parameter may have, with the
// validator that turns user text into the canonical text sent to the engine.
var paramTypes = map[string]func(s string, now time.Time) (string, error){
	"Date":     parseDate,
	"DateTime": parseDateTime,
	"String":   parseString,
	"UInt8":    uintParser(math.MaxUint8),
	"UInt16":   uintParser(math.MaxUint16),
	"UInt32":   uintParser(math.MaxUint32),
	"UInt64":   uintParser(math.MaxUint64),
	"Int32":    intParser(math.MinInt32, math.MaxInt32),
	"Int64":    intParser(math.MinInt64, math.MaxInt64),
	"Float64":  parseFloat,
}

// refNow is the reference time used to check relative defaults at init.
var refNow = time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)

var relDateRe = regexp.MustCompile(`^today(?:([+-])(\d{1,4})([dwmy]))?$`)

func parseDate(s string, now time.Time) (string, error) {
	s = strings.TrimSpace(s)
	if m := relDateRe.FindStringSubmatch(s); m != nil {
		d := time.Date(now.UTC().Year(), now.UTC().Month(), now.UTC().Day(), 0, 0, 0, 0, time.UTC)
		if m[1] != "" {
			n, _ := strconv.Atoi(m[2])
			if m[1] == "-" {
				n = -n
			}
			switch m[3] {
			case "d":
				d = d.AddDate(0, 0, n)
			case "w":
				d = d.AddDate(0, 0, 7*n)
			case "m":
				d = addMonths(d, n)
			case "y":
				d = addMonths(d, 12*n)
			}
		}
		return d.Format(time.DateOnly), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return "", fmt.Errorf("%q is not a date: use YYYY-MM-DD, today, or today-N followed by d, w, m or y (e.g. today-30d)", s)
	}
	if t.Year() < 1970 || t.Year() > 2148 {
		return "", fmt.Errorf("%q is outside ClickHouse's Date range (1970-01-01 .. 2148-12-31)", s)
	}
	return t.Format(time.DateOnly), nil
}

func parseDateTime(s string, now time.Time) (string, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1970 || t.Year() > 2105 {
				return "", fmt.Errorf("%q is outside ClickHouse's DateTime range", s)
			}
			return t.UTC().Format("2006-01-02 15:04:05"), nil
		}
	}
	if d, err := parseDate(s, now); err == nil && strings.HasPrefix(s, "today") {
		return d + " 00:00:00", nil
	}
	return "", fmt.Errorf("%q is not a date-time: use YYYY-MM-DD HH:MM:SS or RFC 3339 (2025-01-31T12:00:00Z)", s)
}

func parseString(s string, _ time.Time) (string, error) {
	if len(s) > 1000 {
		return "", fmt.Errorf("value is %d bytes long; at most 1000", len(s))
	}
	return s, nil
}

func uintParser(max uint64) func(string, time.Time) (string, error) {
	return func(s string, _ time.Time) (string, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil || n > max {
			return "", fmt.Errorf("%q is not an integer between 0 and %d", s, max)
		}
		return strconv.FormatUint(n, 10), nil
	}
}

func intParser(min, max int64) func(string, time.Time) (string, error) {
	return func(s string, _ time.Time) (string, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < min || n > max {
			return "", fmt.Errorf("%q is not an integer between %d and %d", s, min, max)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func parseFloat(s string, _ time.Time) (string, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("%q is not a finite number", s)
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}

func (p Param) resolve(s string, now time.Time) (string, error) {
	return paramTypes[p.Type](s, now)
}

// Resolve validates given against the report's parameters at time now:
// every given name must be declared, every value must parse as its type,
// every parameter without a value takes its default, and a required
// parameter without a value is an error. It returns the canonical text of
// every parameter.
func (r *Report) Resolve(given map[string]string, now time.Time) (map[string]string, error) {
	names := make([]string, 0, len(given))
	for n := range given {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if r.param(n) == nil {
			var known []string
			for _, p := range r.Params {
				known = append(known, p.Name)
			}
			reason := "not a parameter of this report"
			if len(known) > 0 {
				reason += " (parameters: " + strings.Join(known, ", ") + ")"
			} else {
				reason += " (it takes none)"
			}
			return nil, &ParamError{Report: r.Name, Param: n, Reason: reason}
		}
	}
	out := make(map[string]string, len(r.Params))
	for _, p := range r.Params {
		v, ok := given[p.Name]
		if !ok || v == "" {
			if p.Required() {
				return nil, &ParamError{Report: r.Name, Param: p.Name, Reason: fmt.Sprintf("required (%s: %s)", p.Type, p.Doc)}
			}
			v = p.Default
		}
		c, err := p.resolve(v, now)
		if err != nil {
			return nil, &ParamError{Report: r.Name, Param: p.Name, Reason: err.Error()}
		}
		out[p.Name] = c
	}
	if f, t := out["from"], out["to"]; f != "" && t != "" && f > t && r.param("from").Type == r.param("to").Type {
		return nil, &ParamError{Report: r.Name, Param: "to", Reason: fmt.Sprintf("%s is before from (%s)", t, f)}
	}
	return out, nil
}

// addMonths moves d by n calendar months, clamping the day to the target
// month's last day (Aug 31 - 6 months = Feb 28), as ClickHouse's
// subtractMonths does.
func addMonths(d time.Time, n int) time.Time {
	first := time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, n, 0)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d.Day(), last), 0, 0, 0, 0, time.UTC)
}
