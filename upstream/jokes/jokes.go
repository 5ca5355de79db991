// Package jokes holds the dad jokes the upstream streams, embedded from
// jokes.txt so the binary needs no files at run time.
package jokes

import (
	_ "embed"
	"strings"
	"sync"
)

//go:embed jokes.txt
var raw string

// All returns the jokes in file order. A joke may hold several lines.
func All() []string {
	once.Do(func() { all = parse(raw) })
	return append([]string(nil), all...)
}

var (
	once sync.Once
	all  []string
)

// parse splits text into paragraphs separated by blank lines, skipping
// lines that start with '#'.
func parse(text string) []string {
	var out, lines []string
	flush := func() {
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
			lines = nil
		}
	}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, " \t\r\n")
		switch {
		case strings.HasPrefix(line, "#"):
		case line == "":
			flush()
		default:
			lines = append(lines, line)
		}
	}
	flush()
	return out
}

// Cycle returns a function that hands out list's jokes in order, starting
// over at the end. It is safe for concurrent use. It panics on an empty
// list, which is a programming error.
func Cycle(list []string) func() string {
	if len(list) == 0 {
		panic("jokes: empty list")
	}
	var mu sync.Mutex
	i := 0
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		j := list[i%len(list)]
		i++
		return j
	}
}
