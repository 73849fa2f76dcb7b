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
func TestGolden(t *testing.T) {
	e := openDB(t)
	ctx := context.Background()
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range goldenCases() {
		t.Run(c.file, func(t *testing.T) {
			if c.params == nil {
				t.Fatalf("querytest.Params has no parameters for %s", c.report)
			}
			res, err := RunAt(ctx, e, c.report, c.params, now)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := WriteTable(&b, res); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.file+".golden")
			if *update {
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
