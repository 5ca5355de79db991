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

// What ships (the three adapters, the upstream, the core they share and the
// two servers' commands) never imports the tooling that runs and measures
// it; tests may.
func TestTheProductDoesNotImportTheTooling(t *testing.T) {
	repo := filepath.Join("..", "..")
	product := []string{"filter", "module", "extproc", "upstream", "cmd/upstream", "cmd/extproc",
		"internal/policy", "internal/sse", "internal/ssestream", "internal/routes", "internal/cli"}
	for _, dir := range product {
		err := filepath.WalkDir(filepath.Join(repo, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "example.com/sse-on-envoy/internal/tooling") {
					t.Errorf("%s imports %s", path, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
