package localstack

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink the supervisor's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A shell script child: it prints a line per start, so restarts show in
// its log, and its readiness is a file it writes.
func startTestService(t *testing.T, logs *syncBuffer) *Service {
	t.Helper()
	dir := t.TempDir()
	marker := filepath.Join(dir, "ready")
	script := "echo started $$; echo > " + marker + "; exec sleep 60"
	ready := func(context.Context) error {
		_, err := os.Stat(marker)
		return err
	}
	s, err := StartService(dir, "child", "/bin/sh", ready, slog.New(slog.NewTextHandler(logs, nil)), "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceRestartsAKilledChild(t *testing.T) {
	var logs syncBuffer
	s := startTestService(t, &logs)
	first := s.Process()
	// Ready again must mean the new child's marker, written after its
	// "started" line, not the first one's.
	if err := os.Remove(filepath.Join(s.dir, "ready")); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s.Restarts() == 0 {
		if ctx.Err() != nil {
			t.Fatalf("not restarted; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Process() == first {
		t.Error("the same process after a restart")
	}
	log := logs.String()
	for _, want := range []string{"child exited unexpectedly", "name=child", "signal: killed", "started ", "child restarted"} {
		if !strings.Contains(log, want) {
			t.Errorf("supervision log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(s.Output(), "started "); n != 2 {
		t.Errorf("the child's log shows %d starts, want 2 (appended):\n%s", n, s.Output())
	}
}

func TestServiceWithoutRestartStaysDown(t *testing.T) {
	var logs syncBuffer
	s := startTestService(t, &logs)
	s.SetRestart(false)
	exits := exitDecisions(s)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	// The decision is final: with restarts off, supervision ends there.
	if d := waitExit(t, exits); d != exitNotRestarting {
		t.Fatalf("supervision decided %q, want %q", d, exitNotRestarting)
	}
	if exited, _ := s.Process().Exited(); !exited || s.Restarts() != 0 {
		t.Fatalf("restarted although restarts are off (restarts %d)", s.Restarts())
	}
	if !strings.Contains(logs.String(), "not restarting") {
		t.Errorf("log:\n%s", logs.String())
	}
	// Start brings it back on demand.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if exited, _ := s.Process().Exited(); exited {
		t.Error("Start left it down")
	}
}

func TestServiceStopIsNotACrash(t *testing.T) {
	var logs syncBuffer
	s := startTestService(t, &logs)
	exits := exitDecisions(s)
	s.Stop(time.Second)
	// A stop is final: supervision ends at this decision.
	if d := waitExit(t, exits); d != exitOnPurpose {
		t.Fatalf("supervision decided %q, want %q", d, exitOnPurpose)
	}
	if s.Restarts() != 0 || strings.Contains(logs.String(), "unexpectedly") {
		t.Errorf("Stop was taken for a crash: restarts %d, log:\n%s", s.Restarts(), logs.String())
	}
}

// exitDecisions reports what supervision decides for each exit of s's
// children from now on.
func exitDecisions(s *Service) <-chan exitDecision {
	ch := make(chan exitDecision, 8)
	s.mu.Lock()
	s.exitHandled = func(d exitDecision) {
		select {
		case ch <- d:
		default:
		}
	}
	s.mu.Unlock()
	return ch
}

// waitExit waits, bounded, for supervision's decision on an exit.
func waitExit(t *testing.T, exits <-chan exitDecision) exitDecision {
	t.Helper()
	select {
	case d := <-exits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("supervision decided nothing about the exit within 10s")
	}
	return ""
}
