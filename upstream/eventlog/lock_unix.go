//go:build unix

package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir for the life of the process (or
// until release): the NATS server does not lock its storage, and two
// processes writing one store would corrupt it.
func lockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "upstream.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("eventlog: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("eventlog: data directory %s is in use by another upstream: give each its own -data, or share one NATS with -nats-url", dir)
		}
		return nil, fmt.Errorf("eventlog: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
