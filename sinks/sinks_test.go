package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{&Exception{Code: 252, Message: "TOO_MANY_PARTS"}, true},
		{fmt.Errorf("insert: %w", &Exception{Code: 241}), true},
		{&Exception{Code: 62}, false},  // syntax
		{&Exception{Code: 60}, false},  // unknown table
		{&Exception{Code: 164}, false}, // readonly
		{io.EOF, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{errors.New("row 3: not an integer"), false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoffRetry(t *testing.T) {
	b := Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 4}
	calls := 0
	err := b.Retry(context.Background(), Retryable, nil, func() error {
		calls++
		if calls < 3 {
			return io.EOF
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient: err %v after %d calls", err, calls)
	}
	calls = 0
	err = b.Retry(context.Background(), Retryable, nil, func() error { calls++; return io.EOF })
	if !errors.Is(err, io.EOF) || calls != 4 {
		t.Fatalf("exhausted: err %v after %d calls, want 4", err, calls)
	}
	calls = 0
	err = b.Retry(context.Background(), Retryable, nil, func() error { calls++; return &Exception{Code: 62} })
	if calls != 1 || err == nil {
		t.Fatalf("terminal: %d calls", calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Backoff{Initial: time.Hour, Attempts: 3}.Retry(ctx, Retryable, nil, func() error { return io.EOF })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestFormatParam(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("X", 3600))
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"a\tb\\c\nd", `a\tb\\c\nd`},
		{int32(-5), "-5"},
		{uint64(18446744073709551615), "18446744073709551615"},
		{1.25, "1.25"},
		{true, "true"},
		{nil, `\N`},
		{ts, "2024-01-02 02:04:05.6"},
		{time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), "2024-01-02"},
		{[]string{"x'y", `z\`}, `['x\'y','z\\']`},
		{[]int64{1, 2}, "[1,2]"},
		{[]any{"a", nil}, "['a',NULL]"},
	} {
		got, err := FormatParam(tc.v)
		if err != nil || got != tc.want {
			t.Errorf("FormatParam(%#v) = %q, %v; want %q", tc.v, got, err, tc.want)
		}
	}
	if _, err := FormatParam(struct{}{}); err == nil {
		t.Error("struct accepted")
	}
}

func TestQuoting(t *testing.T) {
	if got := QuoteIdent("we`ird"); got != "`we\\`ird`" {
		t.Errorf("QuoteIdent = %s", got)
	}
	if got := QualifiedTable("db", "t"); got != "`db`.`t`" {
		t.Errorf("QualifiedTable = %s", got)
	}
	if got := QualifiedTable("db", "other.t"); got != "`other`.`t`" {
		t.Errorf("QualifiedTable = %s", got)
	}
	if got := QuoteString("it's"); got != `'it\'s'` {
		t.Errorf("QuoteString = %s", got)
	}
}
