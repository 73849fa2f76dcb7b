package sinks

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// Exception is a ClickHouse server exception: its numeric code, its name
// (e.g. TOO_MANY_PARTS) when known, and the message.
type Exception struct {
	Code    int32
	Name    string
	Message string
}

func (e *Exception) Error() string { return e.Message }

// retryableCodes are the ClickHouse exception codes that describe a transient
// condition: the statement did not take effect and the same statement may
// succeed later. This is the one list both engines consult (compare PeerDB
// flow/pkg/clickhouse/query_retry.go). Codes not listed are terminal: syntax
// errors, unknown tables or columns, type mismatches, readonly refusals.
var retryableCodes = map[int32]string{
	3:   "UNEXPECTED_END_OF_FILE",
	159: "TIMEOUT_EXCEEDED",
	198: "DNS_ERROR",
	202: "TOO_MANY_SIMULTANEOUS_QUERIES",
	203: "NO_FREE_CONNECTION",
	209: "SOCKET_TIMEOUT",
	210: "NETWORK_ERROR",
	236: "ABORTED",
	241: "MEMORY_LIMIT_EXCEEDED",
	242: "TABLE_IS_READ_ONLY",
	252: "TOO_MANY_PARTS",
	285: "TOO_FEW_LIVE_REPLICAS",
	319: "UNKNOWN_STATUS_OF_INSERT",
	364: "TOO_MANY_PARTITIONS", // can clear after merges; bounded by the retry budget
	373: "SESSION_IS_LOCKED",
	425: "SYSTEM_ERROR",
	999: "KEEPER_EXCEPTION",
	// 1002 UNKNOWN_EXCEPTION is terminal.
}

// RetryableCode reports whether a ClickHouse exception code is transient.
func RetryableCode(code int32) bool {
	_, ok := retryableCodes[code]
	return ok
}

// Retryable reports whether err is worth retrying: a transient ClickHouse
// exception, or a network failure (refused, reset, broken pipe, EOF, timeout).
// Context cancellation is never retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ex *Exception
	if errors.As(err, &ex) {
		return RetryableCode(ex.Code)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // dial errors, timeouts, resets wrapped as *net.OpError
	}
	return false
}

// Backoff is an exponential retry schedule: Initial, doubled up to Max, at
// most Attempts tries in all (the first try included).
type Backoff struct {
	Initial  time.Duration
	Max      time.Duration
	Attempts int
}

// DefaultBackoff retries for roughly a minute: 100ms, 200ms, ... 5s.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Attempts: 16}

// Retry runs op until it succeeds, fails with an error retryable rejects, the
// attempts are spent or ctx ends. onRetry (may be nil) sees each retried error.
func (b Backoff) Retry(ctx context.Context, retryable func(error) bool, onRetry func(attempt int, err error), op func() error) error {
	delay := b.Initial
	attempts := max(b.Attempts, 1)
	var err error
	for i := 1; ; i++ {
		if err = op(); err == nil || !retryable(err) || i >= attempts {
			return err
		}
		if onRetry != nil {
			onRetry(i, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, b.Max)
	}
}
