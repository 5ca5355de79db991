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
// 4 MB before its first collection, all of it in Envoy's RSS: with a
// thousand streams that is 4 KiB a stream for nothing. 25 lowers that floor
// to 1 MB and collects at 1.25x the live heap; collections come only with
// new streams. GOGC in Envoy's environment still wins.
const gcPercent = 25

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	abi.SetMetadataKeys(ssemodule.MetadataKeys)
	abi.Register(ssemodule.Module{})
}

func main() {}
