//go:build linux

package chdb

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestSpoolBlockInMemory: on Linux a block goes to an in-memory file the
// engine can open by name, nothing lands in the spool directory, and the
// file is gone once released.
func TestSpoolBlockInMemory(t *testing.T) {
	e := &Engine{spool: t.TempDir()}
	raw := bytes.Repeat([]byte("native block\x00\n\n"), 1000)
	name, release, err := e.spoolBlock(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "/proc/self/fd/") {
		t.Errorf("spooled to %q, want an in-memory file under /proc/self/fd", name)
	}
	if target, err := os.Readlink(name); err != nil || !strings.Contains(target, "memfd:orderflow-insert") {
		t.Errorf("%s links to %q (%v), want the memfd", name, target, err)
	}
	if got, err := os.ReadFile(name); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("read back %d bytes (%v), want the %d spooled", len(got), err, len(raw))
	}
	if left, _ := os.ReadDir(e.spool); len(left) != 0 {
		t.Errorf("spool directory holds %v", left)
	}
	release()
	if target, err := os.Readlink(name); err == nil && strings.Contains(target, "memfd:orderflow-insert") {
		t.Errorf("%s still open after release", name)
	}
}
