package api

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (workers, progress printer, pools, test
// servers) is gone when the package's tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
