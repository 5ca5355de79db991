// Command testreport reads `go test -json` on stdin and prints what a
// person needs of it: one line per package, the whole output of every
// failed test and of every failed package, build errors, and at the end
// every skipped test with its reason. Plain go test shows a skip only with
// -v, so a test skipped for a missing Envoy, NATS or browser would pass in
// silence; here it is listed. It exits 1 if anything failed or the input
// had no result at all. `make unit` pipes its run through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// sourcePrefix is where t.Skip was called ("x_test.go:25: ").
var sourcePrefix = regexp.MustCompile(`^\S+\.go:\d+: `)

func main() {
	ok, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
	ImportPath string // build-output, build-fail
}

// report copies the summary of the events on r to w and reports whether
// every package passed.
func report(r io.Reader, w io.Writer) (bool, error) {
	type key struct{ pkg, test string }
	output := map[key][]string{}
	var skips []string
	results, failed := 0, false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go's own errors on stderr, merged): as it is.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			output[k] = append(output[k], e.Output)
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			failed = true
		case "skip":
			if e.Test == "" {
				results++ // no test files
				break
			}
			skips = append(skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason(output[k])))
		case "fail":
			failed = true
			if e.Test != "" {
				fmt.Fprintf(w, "--- FAIL: %s %s\n%s", e.Package, e.Test, strings.Join(output[k], ""))
				break
			}
			results++
			fmt.Fprint(w, strings.Join(output[k], ""))
		case "pass":
			if e.Test == "" {
				results++
				fmt.Fprintf(w, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
				// A package's own lines (a TestMain saying what it skipped).
				for _, l := range output[k] {
					if strings.Contains(l, "SKIPPED") {
						skips = append(skips, fmt.Sprintf("%s: %s", e.Package, strings.TrimSpace(l)))
					}
				}
			}
		}
		if e.Action == "pass" || e.Action == "fail" || e.Action == "skip" {
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if len(skips) > 0 {
		fmt.Fprintf(w, "\nSKIPPED (%d), so NOT tested by this run:\n", len(skips))
		for _, s := range skips {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if results == 0 {
		return false, fmt.Errorf("no test results on stdin (want go test -json)")
	}
	return !failed, nil
}

// reason is what a skipped test said, without the run and skip markers,
// each line once (a test may say it on stderr too: without -v, go test
// prints no skip message).
func reason(lines []string) string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		l = sourcePrefix.ReplaceAllString(l, "")
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return "(no reason given)"
	}
	return strings.Join(out, " ")
}
