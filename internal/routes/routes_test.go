package routes

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
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

// The tooling that runs and measures the product lives apart, in tools/.
const toolsPath = "example.com/sse-on-envoy/tools"

// What ships (the three adapters, the upstream, the core under internal/ and
// the two servers' commands) never imports the tooling that runs and
// measures it; tests may.
func TestTheProductDoesNotImportTheTooling(t *testing.T) {
	repo := filepath.Join("..", "..")
	product := []string{"filter", "module", "extproc", "upstream", "cmd/upstream", "cmd/extproc", "internal"}
	for _, dir := range product {
		found, err := toolingImports(filepath.Join(repo, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Error(f)
		}
	}
}

// The check itself catches a product file importing tools/ (and not a
// package whose name merely starts with "tools").
func TestToolingImportsCatchesAnImport(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.go":      "package a\n\nimport _ \"example.com/sse-on-envoy/tools/localstack\"\n",
		"b.go":      "package a\n\nimport _ \"example.com/sse-on-envoy/toolsmith\"\n",
		"a_test.go": "package a\n\nimport _ \"example.com/sse-on-envoy/tools/loadtest\"\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, err := toolingImports(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || !strings.Contains(found[0], "a.go imports example.com/sse-on-envoy/tools/localstack") {
		t.Errorf("toolingImports = %q, want only a.go's import of tools/localstack", found)
	}
}

// toolingImports lists the non-test Go files under dir importing tools/.
func toolingImports(dir string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == toolsPath || strings.HasPrefix(p, toolsPath+"/") {
				found = append(found, path+" imports "+p)
			}
		}
		return nil
	})
	return found, err
}
