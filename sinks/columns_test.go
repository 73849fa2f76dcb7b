package sinks

import (
	"math"
	"testing"
)

func TestCentsText(t *testing.T) {
	for v, want := range map[int64]string{0: "0.00", 5: "0.05", -50: "-0.50", 1234: "12.34", -123456: "-1234.56",
		math.MaxInt64: "92233720368547758.07", math.MinInt64: "-92233720368547758.08"} {
		if got := CentsText(v); got != want {
			t.Errorf("CentsText(%d) = %q, want %q", v, got, want)
		}
	}
}
