package fdlimit

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestRaiseReachesChildren(t *testing.T) {
	got, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got != lim.Max || lim.Cur != lim.Max {
		t.Fatalf("Raise = %d; limit now %d of %d", got, lim.Cur, lim.Max)
	}
	out, err := exec.Command("sh", "-c", "ulimit -n").Output()
	if err != nil {
		t.Fatalf("asking a child shell its limit: %v", err)
	}
	if child, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64); err != nil || child != got {
		t.Errorf("a child's limit is %q, want %d", out, got)
	}
}
