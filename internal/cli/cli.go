// Package cli is the one convention every command in this repository
// follows, so that an operator learns it once:
//
//   - every flag falls back to an environment variable, PREFIX_NAME with
//     dashes turned into underscores (-tls-cert of the upstream is
//     UPSTREAM_TLS_CERT); the command line wins over the environment, which
//     wins over the default;
//   - -log-format (text or json) and -log-level (debug, info, warn, error;
//     default info) choose the log/slog output, on stderr;
//   - exit codes: 0 done, 1 failed, 2 bad flags or environment (with a
//     message that names the flag and its variable).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is a bad flag or environment variable: the command exits with
// ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError, for checks a command makes after Parse.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// FlagSet is a flag.FlagSet whose flags fall back to environment variables.
type FlagSet struct {
	*flag.FlagSet
	envPrefix string
	logFormat string
	logLevel  slog.Level
}

// NewFlagSet returns a FlagSet for the command name whose variables start
// with envPrefix (such as "UPSTREAM_"), with -log-format and -log-level.
func NewFlagSet(name, envPrefix string) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), envPrefix: envPrefix}
	fs.StringVar(&fs.logFormat, "log-format", "text", "log format: text or json")
	fs.TextVar(&fs.logLevel, "log-level", slog.LevelInfo, "lowest level logged: debug, info, warn or error")
	return fs
}

// Env is the environment variable of the flag name.
func (fs *FlagSet) Env(name string) string {
	return fs.envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Flag names a flag with its variable, for error messages: "-queue (env UPSTREAM_QUEUE)".
func (fs *FlagSet) Flag(name string) string {
	return fmt.Sprintf("-%s (env %s)", name, fs.Env(name))
}

// Parse reads args, then the environment for every flag the command line
// did not set. Errors are UsageErrors naming the flag and its variable;
// -h writes the usage to stderr and gives flag.ErrHelp.
func (fs *FlagSet) Parse(args []string, getenv func(string) string, stderr io.Writer) error {
	// The flag package would print its message and the whole usage on any
	// mistake; Run prints one line that names the flag instead.
	fs.SetOutput(io.Discard)
	if err := fs.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage(stderr)
			return err
		}
		return UsageError{err}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected arguments: %q", fs.Args())
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(fs.Env(f.Name))
		if onCommandLine[f.Name] || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s (flag -%s): want %s", v, fs.Env(f.Name), f.Name, describeWant(f)))
		}
	})
	if len(errs) > 0 {
		return UsageError{errors.Join(errs...)}
	}
	if fs.logFormat != "text" && fs.logFormat != "json" {
		return Usagef("%s must be text or json, got %q", fs.Flag("log-format"), fs.logFormat)
	}
	return nil
}

// describeWant says what a flag's value should look like; the flag
// package's own "parse error" does not.
func describeWant(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "a valid value"
	}
	switch g.Get().(type) {
	case time.Duration:
		return "a duration such as 2s, 500ms or 1m30s"
	case int, int64, uint, uint64:
		return "a whole number"
	case bool:
		return "true or false"
	case slog.Level:
		return "debug, info, warn or error"
	default:
		return "a valid value"
	}
}

// Usage writes every flag with its variable and default to w.
func (fs *FlagSet) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage of %s (each flag falls back to its environment variable):\n", fs.Name())
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\n    \t%s (env %s)", f.Name, typ, usage, fs.Env(f.Name))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// Logger is the slog logger -log-format and -log-level ask for, writing to w.
func (fs *FlagSet) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: fs.logLevel}
	if fs.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Command is a command's body: it gets a context that ends on SIGINT or
// SIGTERM, its arguments, the environment and stderr.
type Command func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error

// Run runs cmd and returns its exit code; errors are printed as "name: err",
// with the usage for a UsageError.
func Run(ctx context.Context, name string, cmd Command, args []string, getenv func(string) string, stderr io.Writer) int {
	err := cmd(ctx, args, getenv, stderr)
	var usage UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "%s: %v\n(-h lists the flags)\n", name, err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}

// Main is a command's func main: Run with the process's arguments,
// environment and signals. A second signal stops the process at once.
func Main(name string, cmd Command) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(Run(ctx, name, cmd, os.Args[1:], os.Getenv, os.Stderr))
}
