package backfill

// WithAfterWrite sets the direct mode's hook between a chunk's ClickHouse
// write and its Kafka commit (a crash in that window, for tests).
func WithAfterWrite(o Options, f func(table string, lo, hi int64) error) Options {
	o.afterWrite = f
	return o
}
