package chdb

import "os"

// spoolFile writes raw to a new file in the spool directory and returns its
// path and a function that removes it.
func (e *Engine) spoolFile(raw []byte) (string, func(), error) {
	f, err := os.CreateTemp(e.spool, "insert-*.native")
	if err != nil {
		return "", nil, err
	}
	name := f.Name()
	release := func() { _ = os.Remove(name) }
	if _, err := f.Write(raw); err != nil {
		_ = f.Close()
		release()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		release()
		return "", nil, err
	}
	return name, release, nil
}
