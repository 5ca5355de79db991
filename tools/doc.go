// Package tools is the home of the tooling that runs and measures the
// product, apart from the core under internal/: benchload (the load
// benchmark), envoyconfig (Envoy configs as protos), fdlimit, loadtest and
// mercureload (the load clients), localstack (the whole system on
// loopback), sharedobject (building and inspecting the libraries Envoy
// loads). Nothing that ships imports it
// (routes.TestTheProductDoesNotImportTheTooling).
package tools
