package abi

/*
#include <stdlib.h>
#include "ssescan.h"
*/
import "C"

import "unsafe"

// cScanner is ssescan.c's scanner driven from Go: what the tests that hold
// it equal to internal/sse.Scanner feed.
type cScanner struct{ s *C.sse_scan }

func newCScanner() *cScanner {
	return &cScanner{s: (*C.sse_scan)(C.calloc(1, C.size_t(unsafe.Sizeof(C.sse_scan{}))))}
}

func (c *cScanner) write(p []byte) {
	if len(p) == 0 {
		C.sse_scan_write(c.s, nil, 0)
		return
	}
	C.sse_scan_write(c.s, (*C.char)(unsafe.Pointer(unsafe.SliceData(p))), C.size_t(len(p)))
}

func (c *cScanner) free() {
	C.sse_scan_free(c.s)
	C.free(unsafe.Pointer(c.s))
}

func (c *cScanner) events() uint64      { return uint64(c.s.events) }
func (c *cScanner) comments() uint64    { return uint64(c.s.comments) }
func (c *cScanner) bytes() uint64       { return uint64(c.s.bytes) }
func (c *cScanner) truncations() uint64 { return uint64(c.s.truncations) }
func (c *cScanner) lastEventID() string {
	return C.GoStringN(C.sse_scan_last_id(c.s), C.int(c.s.last_id_len))
}

// cScanMaxLine is the C scanner's line and id limit, as it reads it.
func cScanMaxLine() int { return int(C.sse_scan_max_line) }
