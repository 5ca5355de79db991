package routes

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTLS(t *testing.T) {
	if got := TLS(EventsPath); got != "/sse-with-tls/events" {
		t.Errorf("TLS(%q) = %q", EventsPath, got)
	}
}

// The upstream may use internal/ packages; none of them, tests included,
// may use the upstream's: wire-format and path facts live here and in
// internal/sse.
func TestNothingUnderInternalImportsTheUpstream(t *testing.T) {
	root := filepath.Join("..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "example.com/sse-on-envoy/upstream") {
				t.Errorf("%s imports %s", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
