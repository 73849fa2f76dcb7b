//go:build !linux

package chdb

func preserveGoSignals(f func()) { f() }
