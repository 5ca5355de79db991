// Package sharedobject builds a Go package as a C shared library and reads
// what it exports and needs, for the tests of the two libraries Envoy loads
// (the golang filter's .so and the dynamic module).
package sharedobject

import (
	"context"
	"debug/elf"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Library is what a built shared object offers Envoy.
type Library struct {
	// Exported are the symbols it defines.
	Exported map[string]bool
	// MaxGlibc is the newest GLIBC_x.y symbol version it needs.
	MaxGlibc [2]int
}

// Build compiles pkg with -buildmode=c-shared and the build tags into out
// and reads it.
func Build(pkg, out, tags string) (*Library, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, "go", "build", "-tags="+tags, "-buildmode=c-shared", "-o", out, pkg).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build -buildmode=c-shared %s: %w\n%s", pkg, err, msg)
	}
	so, err := elf.Open(out)
	if err != nil {
		return nil, err
	}
	defer so.Close()
	symbols, err := so.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("reading %s's symbols: %w", out, err)
	}
	lib := &Library{Exported: map[string]bool{}}
	for _, s := range symbols {
		if s.Section != elf.SHN_UNDEF {
			lib.Exported[s.Name] = true
			continue
		}
		if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok {
			major, minor, _ := strings.Cut(v, ".")
			ma, _ := strconv.Atoi(major)
			mi, _ := strconv.Atoi(strings.SplitN(minor, ".", 2)[0])
			if ma > lib.MaxGlibc[0] || ma == lib.MaxGlibc[0] && mi > lib.MaxGlibc[1] {
				lib.MaxGlibc = [2]int{ma, mi}
			}
		}
	}
	return lib, nil
}
