// Command filter is built with -buildmode=c-shared into the .so that Envoy's
// golang HTTP filter loads (plugin_name "sse"). It only registers: all
// behaviour lives in package ssefilter and below, which tests can import.
package main

import (
	"github.com/envoyproxy/envoy/contrib/golang/filters/http/source/go/pkg/http"

	"example.com/sse-on-envoy/filter/ssefilter"
)

func init() {
	http.RegisterHttpFilterFactoryAndConfigParser(ssefilter.FilterName, ssefilter.Factory, ssefilter.ConfigParser{})
}

func main() {}
