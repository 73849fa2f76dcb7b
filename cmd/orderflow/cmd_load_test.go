package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
)

// TestMigrateAndLoad runs `orderflow migrate` and `orderflow load` twice
// with the same seed (-truncate) against a fresh database: the printed
// checksums are identical.
func TestMigrateAndLoad(t *testing.T) {
	url := testenv.Postgres(t)
	code, out, errOut := runMain("migrate", "-pg-url", url)
	if code != exitOK || !strings.Contains(out, "migrated from version 0") {
		t.Fatalf("migrate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runMain("migrate", "-pg-url", url)
	if code != exitOK || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("second migrate: exit %d, stdout %q", code, out)
	}
	sums := regexp.MustCompile(`(?m)^checksum .*$`)
	var first []string
	for i := 0; i < 2; i++ {
		code, out, errOut = runMain("load", "-pg-url", url, "-seed", "5", "-customers", "40", "-orders", "300", "-products", "30", "-truncate", "-checksum")
		if code != exitOK || !strings.Contains(out, "300 orders") {
			t.Fatalf("load: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		got := sums.FindAllString(out, -1)
		if len(got) != 5 {
			t.Fatalf("want 5 checksum lines, got %q", out)
		}
		if i == 0 {
			first = got
		} else if strings.Join(first, "\n") != strings.Join(got, "\n") {
			t.Fatalf("same seed, different tables:\n%s\n%s", strings.Join(first, "\n"), strings.Join(got, "\n"))
		}
	}
}

func TestLoadUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"load", "-mode", "smoke"},
		{"load", "-orders", "5", "-customers", "0"},
		{"load", "-seed", "-1"},
		{"load", "-mode", "http", "-truncate"},
		{"load", "-sim-start", "yesterday"},
		{"migrate", "extra"},
		{"api", "-pg-max-conns", "0"},
	} {
		if code, _, errOut := runMain(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut)
		}
	}
}
