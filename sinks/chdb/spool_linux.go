//go:build linux

package chdb

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// spoolBlock hands an encoded block to the engine as a file it can open by
// name: an anonymous in-memory file (memfd), named through /proc/self/fd,
// which the engine (in this process) reads like any file. It never touches
// the data directory's file system (no block allocation, journal or
// writeback for a file that lives a fraction of a second) and vanishes with
// the process. Where memfd_create is refused (old kernel, seccomp), the
// block goes to a spool file as on other systems.
func (e *Engine) spoolBlock(raw []byte) (string, func(), error) {
	fd, err := unix.MemfdCreate("orderflow-insert", unix.MFD_CLOEXEC)
	if err != nil {
		return e.spoolFile(raw)
	}
	f := os.NewFile(uintptr(fd), "memfd:orderflow-insert")
	if _, err := f.Write(raw); err != nil {
		_ = f.Close()
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), func() { _ = f.Close() }, nil
}
