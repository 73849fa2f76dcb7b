//go:build !linux

package chdb

// spoolBlock hands an encoded block to the engine as a spool file.
func (e *Engine) spoolBlock(raw []byte) (string, func(), error) { return e.spoolFile(raw) }
