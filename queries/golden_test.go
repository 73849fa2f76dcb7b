package queries

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queries/querytest"
)

// goldenCase is one report run on the fixture.
type goldenCase struct {
	file   string
	report string
	params map[string]string
}

func goldenCases() []goldenCase {
	var cs []goldenCase
	for _, r := range List() {
		cs = append(cs, goldenCase{r.Name, r.Name, querytest.Params[r.Name]})
	}
	return append(cs,
		// empty periods: zero-filled days, no rows, a zero rate
		goldenCase{"daily_sales_empty_period", "daily_sales", map[string]string{"from": "2026-01-01", "to": "2026-01-03"}},
		goldenCase{"segment_performance_empty_period", "segment_performance", map[string]string{"from": "2026-01-01", "to": "2026-01-31"}},
		goldenCase{"repeat_purchase_rate_empty_period", "repeat_purchase_rate", map[string]string{"from": "2026-01-01", "to": "2026-01-31"}},
		goldenCase{"campaign_impact_unknown_campaign", "campaign_impact", map[string]string{"campaign": "NOPE"}},
	)
}

// TestGolden runs every report on the fixed data set and compares the
// aligned-table output with testdata/<case>.golden (go test -update rewrites
// them). The fixture's answers were checked by hand once; see querytest.
// Every case runs twice: on the facts alone (no rollup refreshed yet), then
// after RefreshRollup, when the @rollup reports read the fixture's full
// months from the monthly rollups; both must give the same golden output.
func TestGolden(t *testing.T) {
	e := openDB(t)
	ctx := context.Background()
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, mode := range []string{"facts", "rollup"} {
		if mode == "rollup" {
			st, err := RefreshRollup(ctx, e, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			if st.Months == 0 || st.Rows == 0 {
				t.Fatalf("RefreshRollup on the fixture: %+v, want months and rows", st)
			}
		}
		for _, c := range goldenCases() {
			t.Run(mode+"/"+c.file, func(t *testing.T) {
				if c.params == nil {
					t.Fatalf("querytest.Params has no parameters for %s", c.report)
				}
				res, err := RunAt(ctx, e, c.report, c.params, now)
				if err != nil {
					t.Fatal(err)
				}
				r, _ := Get(c.report)
				if r.Rollup != "" && c.file == c.report {
					// the fixture's period is whole months: read from the
					// rollup once it is refreshed, from the facts before
					used := len(res.RollupMonths) == 2 && res.RollupMonths[0] < res.RollupMonths[1]
					if used != (mode == "rollup") {
						t.Errorf("%s mode: rollup months %v", mode, res.RollupMonths)
					}
				}
				var b bytes.Buffer
				if err := WriteTable(&b, res); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", c.file+".golden")
				if *update && mode == "facts" {
					if err := os.MkdirAll("testdata", 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./queries -run TestGolden -update to create it)", err)
				}
				if !bytes.Equal(b.Bytes(), want) {
					t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", c.file, path, b.String(), want)
				}
			})
		}
	}
}
