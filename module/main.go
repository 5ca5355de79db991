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

func init() {
	if percent, ok := ssemodule.GCPercent(os.Getenv); ok {
		debug.SetGCPercent(percent)
	}
	// Refused only for a line limit C cannot hold (a test holds it): the
	// program-init hook then logs why and Envoy unloads the module.
	if err := abi.SetStreamSettings(ssemodule.StreamSettings); err != nil {
		abi.Log(abi.LogCritical, "sse: "+err.Error())
	}
	abi.Register(ssemodule.Module{})
}

func main() {}
