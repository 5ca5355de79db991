package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is a child process whose output goes to a log file, so a failing
// test or a user can read what it said.
type Process struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	mu      sync.Mutex
	err     error
	// onPurpose is set by Stop: the exit was asked for, not a crash.
	onPurpose atomic.Bool
}

// StartProcess starts bin with args; its stdout and stderr go to
// dir/name.log.
func StartProcess(dir, name, bin string, args ...string) (*Process, error) {
	return startProcess(dir, name, bin, os.O_TRUNC, nil, args...)
}

// startProcess opens the log with mode (os.O_TRUNC, or os.O_APPEND for a
// restart, which keeps what the crashed child said) and adds env to the
// child's environment.
func startProcess(dir, name, bin string, mode int, env []string, args ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|mode, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// Its own process group, so a Ctrl-C meant for run-local reaches the
	// children only through Stop, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id, for sampling /proc.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits up to grace before SIGKILL.
func (p *Process) Stop(grace time.Duration) {
	p.onPurpose.Store(true)
	if exited, _ := p.Exited(); exited {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL, as a crash would end the process: a supervising
// Service sees an unexpected exit.
func (p *Process) Kill() error {
	if exited, _ := p.Exited(); exited {
		return fmt.Errorf("%s has already exited", p.Name)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	<-p.done
	return nil
}

// Output returns what the process has written so far.
func (p *Process) Output() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// tail is the end of a process's output, for error messages.
func (p *Process) tail(lines int) string {
	all := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// WaitReady polls check until it succeeds, the process exits, or ctx ends.
func (p *Process) WaitReady(ctx context.Context, what string, check func(context.Context) error) error {
	var last error
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited before %s (%v); its output:\n%s", p.Name, what, err, p.tail(30))
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not ready: %v; its output:\n%s", p.Name, what, last, p.tail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// HTTPOK checks that url answers 200.
func HTTPOK(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// FreePorts reserves n distinct loopback ports. They are released before
// use, so another process could take one first; on a test machine that race
// is rare and shows as a clear "address in use".
func FreePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserving a loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Build compiles the main packages into dir and returns their paths by base
// name.
func Build(ctx context.Context, root, dir string, pkgs ...string) (map[string]string, error) {
	args := append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	bins := map[string]string{}
	for _, pkg := range pkgs {
		name := binaryName(pkg)
		bins[name] = filepath.Join(dir, name)
		if _, err := os.Stat(bins[name]); err != nil {
			return nil, errors.New("go build wrote no " + name)
		}
	}
	return bins, nil
}

// binaryName is the file go build writes for pkg: its last path element,
// or the one before a major version suffix (".../nats-server/v2").
func binaryName(pkg string) string {
	name := path.Base(pkg)
	if len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" {
		return path.Base(path.Dir(pkg))
	}
	return name
}
