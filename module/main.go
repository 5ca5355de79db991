// Command module is built with -buildmode=c-shared into libsse.so, the
// dynamic module stock Envoy loads by name ("sse", through
// ENVOY_DYNAMIC_MODULES_SEARCH_PATH) for envoy.filters.http.dynamic_modules.
// It only registers: the hooks live in package abi, the behaviour in
// package ssemodule and below.
package main

import (
	"os"
	"runtime/debug"

	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/ssemodule"
)

// gcPercent sizes the Go heap inside Envoy. It holds a few hundred bytes per
// stream plus the garbage of each stream's start and end (the body path
// allocates nothing). At Go's default of 100 the heap grows to at least
// 4 MB before its first collection, all of it in Envoy's RSS: with 200
// streams that is 20 KiB a stream for nothing. 10 lowers that floor to
// 400 KB and collects at 1.1x the live heap (about 650 bytes a stream);
// collections come only with new streams, every hundred or so. GOGC in
// Envoy's environment still wins.
const gcPercent = 10

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	abi.SetMetadataKeys(ssemodule.MetadataKeys)
	abi.Register(ssemodule.Module{})
}

func main() {}
