package localstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Back-off between restarts of a child that keeps crashing: doubled after
// each quick crash, back to the start once a run lasted stableRun.
const (
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 10 * time.Second
	stableRun    = 30 * time.Second
	tailLines    = 10
)

// Service is a child process kept running: when it exits without Stop
// having asked for it, the exit is logged (name, exit status, its last
// lines) and the child is started again after a back-off, its output
// appended to the same log. Stop ends it for good until Start.
type Service struct {
	Name    string
	LogPath string

	dir, bin string
	env      []string
	args     []string
	ready    func(context.Context) error
	log      *slog.Logger

	mu       sync.Mutex
	proc     *Process
	restart  bool
	stopped  bool
	restarts int
	backoff  time.Duration
	quit     chan struct{} // closed by Stop: a pending restart is dropped
	// exitHandled, when set (tests), is told what supervision decided for
	// each exit of a child, once it is final: exitOnPurpose,
	// exitNotRestarting or exitRestarting.
	exitHandled func(exitDecision)
}

// exitDecision is what supervision made of a child's exit.
type exitDecision string

const (
	// exitOnPurpose: Stop asked for the exit; nothing follows.
	exitOnPurpose exitDecision = "on_purpose"
	// exitNotRestarting: an unexpected exit with restarts off; nothing
	// follows until Start.
	exitNotRestarting exitDecision = "not_restarting"
	// exitRestarting: an unexpected exit; a restart is scheduled.
	exitRestarting exitDecision = "restarting"
)

func (s *Service) noteExit(d exitDecision) {
	s.mu.Lock()
	f := s.exitHandled
	s.mu.Unlock()
	if f != nil {
		f(d)
	}
}

// StartService starts bin and supervises it; ready tells when a (re)started
// child serves.
func StartService(dir, name, bin string, ready func(context.Context) error, log *slog.Logger, args ...string) (*Service, error) {
	return startService(dir, name, bin, nil, ready, log, args...)
}

// startService is StartService with variables added to the child's
// environment.
func startService(dir, name, bin string, env []string, ready func(context.Context) error, log *slog.Logger, args ...string) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{Name: name, dir: dir, bin: bin, env: env, args: args, ready: ready, log: log, restart: true, backoff: firstBackoff}
	p, err := startProcess(dir, name, bin, os.O_TRUNC, env, args...)
	if err != nil {
		return nil, err
	}
	s.LogPath = p.LogPath
	s.run(p)
	return s, nil
}

// run makes p the current child and watches it. Called with s.mu held, or
// before s is shared.
func (s *Service) run(p *Process) {
	s.proc = p
	s.quit = make(chan struct{})
	go s.watch(p, s.quit)
}

func (s *Service) watch(p *Process, quit chan struct{}) {
	<-p.done
	if p.onPurpose.Load() {
		s.noteExit(exitOnPurpose)
		return
	}
	ran := time.Since(p.started)
	_, err := p.Exited()
	s.mu.Lock()
	if ran >= stableRun {
		s.backoff = firstBackoff
	}
	wait, restart := s.backoff, s.restart && !s.stopped
	s.mu.Unlock()
	attrs := []any{"name", s.Name, "status", exitStatus(err), "ran", ran.Round(time.Millisecond), "last_lines", p.tail(tailLines)}
	if !restart {
		s.log.Error("child exited unexpectedly; not restarting it", attrs...)
		s.noteExit(exitNotRestarting)
		return
	}
	s.log.Error("child exited unexpectedly; restarting it", append(attrs, "in", wait)...)
	s.noteExit(exitRestarting)
	for {
		select {
		case <-quit:
			return
		case <-time.After(wait):
		}
		s.mu.Lock()
		if s.stopped || !s.restart {
			s.mu.Unlock()
			return
		}
		s.backoff = min(2*s.backoff, maxBackoff)
		next, err := startProcess(s.dir, s.Name, s.bin, os.O_APPEND, s.env, s.args...)
		if err == nil {
			s.restarts++
			s.run(next)
			s.mu.Unlock()
			s.log.Info("child restarted", "name", s.Name, "restarts", s.restarts)
			return
		}
		wait = s.backoff
		s.mu.Unlock()
		s.log.Error("restarting a child failed", "name", s.Name, "err", err, "retry_in", wait)
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error() // "exit status 1", "signal: killed"
}

// Process is the current child (it changes on every restart).
func (s *Service) Process() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Restarts counts the restarts after unexpected exits.
func (s *Service) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// SetRestart turns restarting after an unexpected exit on (the default) or
// off, so a test can keep a killed child down.
func (s *Service) SetRestart(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restart = on
}

// Kill ends the current child with SIGKILL, as a crash would; the service
// restarts it unless SetRestart(false).
func (s *Service) Kill() error {
	return s.Process().Kill()
}

// Stop ends the child (SIGTERM, SIGKILL after grace) and its supervision.
func (s *Service) Stop(grace time.Duration) {
	s.mu.Lock()
	s.stopped = true
	p, quit := s.proc, s.quit
	s.mu.Unlock()
	select {
	case <-quit:
	default:
		close(quit)
	}
	p.Stop(grace)
}

// Start starts the child again after Stop (or after an unexpected exit
// with restarts off) and waits until it is ready; a running child is left
// alone.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if exited, _ := s.proc.Exited(); exited {
		p, err := startProcess(s.dir, s.Name, s.bin, os.O_APPEND, s.env, s.args...)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.stopped = false
		s.run(p)
	}
	s.mu.Unlock()
	return s.WaitReady(ctx)
}

// WaitReady waits until the current child answers its readiness check,
// riding over a restart in progress.
func (s *Service) WaitReady(ctx context.Context) error {
	for {
		p := s.Process()
		exited, _ := p.Exited()
		s.mu.Lock()
		gone := exited && (s.stopped || !s.restart)
		s.mu.Unlock()
		if gone {
			return fmt.Errorf("%s is not running; its output:\n%s", s.Name, p.tail(30))
		}
		if !exited {
			err := p.WaitReady(ctx, "ready", s.ready)
			if err == nil || ctx.Err() != nil {
				return err
			}
			if again, _ := p.Exited(); !again {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready: %w", s.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Output is everything the child said, restarts included.
func (s *Service) Output() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", s.LogPath, err)
	}
	return string(b)
}
