package chdb

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// lib is libchdb.so bound with purego. It is loaded on the first Open and
// stays loaded for the life of the process (a ClickHouse engine cannot be
// unloaded safely).
type lib struct {
	path string

	setSignalHandlers func(enabled int32)
	connect           func(argc int32, argv unsafe.Pointer) *uintptr // chdb_connection* (NULL on failure)
	closeConn         func(conn *uintptr)
	queryN            func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr) uintptr
	queryWithParamsN  func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr,
		names unsafe.Pointer, nameLens unsafe.Pointer, values unsafe.Pointer, valueLens unsafe.Pointer, n uintptr) uintptr
	resultBuffer   func(res uintptr) *byte
	resultLength   func(res uintptr) uintptr
	resultError    func(res uintptr) string // "" when no error
	resultRowsRead func(res uintptr) uint64
	resultElapsed  func(res uintptr) float64
	destroyResult  func(res uintptr)
}

var (
	libMu     sync.Mutex
	loadedLib *lib
)

// loadLib dlopens libchdb.so at path once per process. A later call with a
// different path fails: one process holds one ClickHouse engine.
func loadLib(path string) (*lib, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("load libchdb: %w (fetch it with `make up` or set -chdb-lib / ORDERFLOW_CHDB_LIB)", err)
	}
	libMu.Lock()
	defer libMu.Unlock()
	if loadedLib != nil {
		if loadedLib.path != path {
			return nil, fmt.Errorf("load libchdb: %s is already loaded; cannot also load %s", loadedLib.path, path)
		}
		return loadedLib, nil
	}
	var h uintptr
	var err error
	preserveGoSignals(func() { h, err = purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL) })
	if err != nil {
		return nil, fmt.Errorf("load libchdb %s: %w (fetch it with `make up` or set -chdb-lib / ORDERFLOW_CHDB_LIB)", path, err)
	}
	l := &lib{path: path}
	syms := []struct {
		fn   any
		name string
	}{
		{&l.setSignalHandlers, "chdb_set_signal_handlers_enabled"},
		{&l.connect, "chdb_connect"},
		{&l.closeConn, "chdb_close_conn"},
		{&l.queryN, "chdb_query_n"},
		{&l.queryWithParamsN, "chdb_query_with_params_n"},
		{&l.resultBuffer, "chdb_result_buffer"},
		{&l.resultLength, "chdb_result_length"},
		{&l.resultError, "chdb_result_error"},
		{&l.resultRowsRead, "chdb_result_rows_read"},
		{&l.resultElapsed, "chdb_result_elapsed"},
		{&l.destroyResult, "chdb_destroy_query_result"},
	}
	for _, s := range syms {
		p, err := purego.Dlsym(h, s.name)
		if err != nil {
			return nil, fmt.Errorf("load libchdb %s: symbol %s: %w (need libchdb >= 26.x from @chdb/lib-linux-x64-gnu)", path, s.name, err)
		}
		purego.RegisterFunc(s.fn, p)
	}
	loadedLib = l
	return l, nil
}
