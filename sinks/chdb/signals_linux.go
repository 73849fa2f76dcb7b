package chdb

import (
	"syscall"
	"unsafe"
)

// kernelSigaction is struct sigaction as the rt_sigaction system call takes
// it on Linux (amd64/arm64 layout: handler, flags, restorer, mask).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// preserveGoSignals runs f (dlopen, chdb_connect) and then puts back every
// signal handler the Go runtime had installed that f replaced.
//
// chdb_set_signal_handlers_enabled(0) resets SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGTRAP, SIGABRT and SIGSYS to SIG_DFL, and chdb_connect installs
// a SIGRTMIN handler (measured with libchdb 26.5.3). Without this, a nil dereference anywhere in the Go
// process kills it instead of raising a recoverable panic, and Go's
// preemption and crash reporting break. Handlers for signals Go left alone
// (chDB's SIGRTMIN profiler handler) are kept.
func preserveGoSignals(f func()) {
	var before [65]kernelSigaction
	for s := 1; s < len(before); s++ {
		before[s] = getSigaction(s)
	}
	f()
	for s := 1; s < len(before); s++ {
		if s == int(syscall.SIGKILL) || s == int(syscall.SIGSTOP) || before[s].handler == 0 {
			continue
		}
		if now := getSigaction(s); now != before[s] {
			setSigaction(s, &before[s])
		}
	}
}

func getSigaction(sig int) kernelSigaction {
	var old kernelSigaction
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	return old
}

func setSigaction(sig int, sa *kernelSigaction) {
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(sa)), 0, 8, 0, 0)
}
