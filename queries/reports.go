package queries

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed *.sql
var reportFS embed.FS

// Report is one prebuilt report: its SQL and what its header declares.
type Report struct {
	Name     string   `json:"name"`
	Title    string   `json:"title"`
	Question string   `json:"question"`
	Params   []Param  `json:"params"`
	Columns  []Column `json:"columns"`
	Sale     string   `json:"sale"`
	// Rollup names the monthly rollup ("@rollup customer_months") the
	// report reads the current full months of its period from (rollup.go);
	// its SQL uses {rollup_from:Date}, {rollup_to:Date} and
	// {rollup_ids:Array(UInt64)}, which the runner fills in.
	// RollupAllMonths ("@rollup <name> all-months"): the months may start
	// before the period, for a report that reads the history before it too.
	Rollup          string `json:"-"`
	RollupAllMonths bool   `json:"-"`
	SQL             string `json:"-"`
}

// Param is a typed report parameter. Default is empty when the parameter is
// required; relative date defaults ("today", "today-30d", "today-6m",
// "today-1y") are resolved when the report runs.
type Param struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Default string `json:"default,omitempty"`
	Doc     string `json:"doc"`
}

// Required reports whether the parameter has no default.
func (p Param) Required() bool { return p.Default == "" }

// Column is a declared output column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Doc  string `json:"doc"`
}

// ErrUnknownReport is returned for a report name that does not exist.
var ErrUnknownReport = errors.New("unknown report")

var (
	reports   map[string]*Report
	reportSeq []*Report
)

func init() {
	rs, err := parseAll(reportFS)
	if err != nil {
		panic(err)
	}
	reports = map[string]*Report{}
	for _, r := range rs {
		reports[r.Name] = r
	}
	reportSeq = rs
}

// List returns every report, sorted by name.
func List() []*Report { return append([]*Report(nil), reportSeq...) }

// Get returns the named report.
func Get(name string) (*Report, error) {
	r, ok := reports[name]
	if !ok {
		names := make([]string, 0, len(reports))
		for n := range reports {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q (reports: %s)", ErrUnknownReport, name, strings.Join(names, ", "))
	}
	return r, nil
}

func parseAll(fsys fs.FS) ([]*Report, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Report
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		r, err := parseReport(strings.TrimSuffix(n, ".sql"), string(b))
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// rollupParams are the placeholders the runner fills for @rollup reports.
var rollupParams = map[string]string{"rollup_from": "Date", "rollup_to": "Date", "rollup_ids": "Array(UInt64)"}

var (
	paramRe       = regexp.MustCompile(`^(\w+)\s+(\w+)\s*(?:=\s*(\S+))?\s*:\s*(.+)$`)
	columnRe      = regexp.MustCompile(`^(\w+)\s+(\S+)\s*:\s*(.+)$`)
	placeholderRe = regexp.MustCompile(`\{(\w+):([^}]+)\}`)
)

// parseReport reads a report's header: lines "-- @key value" before the
// first SQL line.
func parseReport(name, text string) (*Report, error) {
	r := &Report{Name: name, SQL: text}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "--") {
			break
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "--"))
		if !strings.HasPrefix(line, "@") {
			continue
		}
		key, val, _ := strings.Cut(line[1:], " ")
		val = strings.TrimSpace(val)
		switch key {
		case "title":
			r.Title = val
		case "question":
			r.Question = val
		case "sale":
			r.Sale = val
		case "rollup":
			name, opt, _ := strings.Cut(val, " ")
			if rollups[name] == nil || (opt != "" && opt != "all-months") {
				return nil, fmt.Errorf("bad @rollup line %q (want: customer_months|place_months|product_months [all-months])", val)
			}
			r.Rollup, r.RollupAllMonths = name, opt != ""
		case "param":
			m := paramRe.FindStringSubmatch(val)
			if m == nil {
				return nil, fmt.Errorf("bad @param line %q (want: name Type [= default] : doc)", val)
			}
			p := Param{Name: m[1], Type: m[2], Default: m[3], Doc: m[4]}
			if _, ok := paramTypes[p.Type]; !ok {
				return nil, fmt.Errorf("parameter %s: unsupported type %s", p.Name, p.Type)
			}
			if p.Default != "" {
				if _, err := p.resolve(p.Default, refNow); err != nil {
					return nil, fmt.Errorf("parameter %s: default: %w", p.Name, err)
				}
			}
			r.Params = append(r.Params, p)
		case "column":
			m := columnRe.FindStringSubmatch(val)
			if m == nil {
				return nil, fmt.Errorf("bad @column line %q (want: name Type : doc)", val)
			}
			r.Columns = append(r.Columns, Column{Name: m[1], Type: m[2], Doc: m[3]})
		default:
			return nil, fmt.Errorf("unknown header key @%s", key)
		}
	}
	if r.Title == "" || r.Question == "" || r.Sale == "" || len(r.Columns) == 0 {
		return nil, errors.New("header needs @title, @question, @sale and @column lines")
	}
	// every placeholder is a declared parameter of the same type, and every
	// parameter is used
	used := map[string]bool{}
	for _, m := range placeholderRe.FindAllStringSubmatch(text, -1) {
		if typ, ok := rollupParams[m[1]]; ok {
			if r.Rollup == "" || m[2] != typ {
				return nil, fmt.Errorf("placeholder {%s:%s} is the runner's: declare @rollup and use it as %s", m[1], m[2], typ)
			}
			used[m[1]] = true
			continue
		}
		p := r.param(m[1])
		if p == nil {
			return nil, fmt.Errorf("placeholder {%s:%s} has no @param", m[1], m[2])
		}
		if p.Type != m[2] {
			return nil, fmt.Errorf("placeholder {%s:%s}: @param declares %s", m[1], m[2], p.Type)
		}
		used[m[1]] = true
	}
	for _, p := range r.Params {
		if !used[p.Name] {
			return nil, fmt.Errorf("parameter %s is not used by the SQL", p.Name)
		}
		if _, ok := rollupParams[p.Name]; ok {
			return nil, fmt.Errorf("parameter %s: the name is the runner's (@rollup)", p.Name)
		}
	}
	if r.Rollup != "" {
		if f, t := r.param("from"), r.param("to"); f == nil || t == nil || f.Type != "Date" || t.Type != "Date" {
			return nil, errors.New("@rollup needs Date parameters from and to")
		}
		if !used["rollup_from"] || !used["rollup_to"] || !used["rollup_ids"] {
			return nil, errors.New("@rollup: the SQL must use {rollup_from:Date}, {rollup_to:Date} and {rollup_ids:Array(UInt64)}")
		}
	}
	return r, nil
}

func (r *Report) param(name string) *Param {
	for i := range r.Params {
		if r.Params[i].Name == name {
			return &r.Params[i]
		}
	}
	return nil
}
