package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type settings struct {
	addr     string
	interval time.Duration
	queue    int
	stamp    bool
}

func newTestFlags(s *settings) *FlagSet {
	fs := NewFlagSet("test", "TEST_")
	fs.StringVar(&s.addr, "addr", ":9000", "listen address")
	fs.DurationVar(&s.interval, "interval", 2*time.Second, "time between events")
	fs.IntVar(&s.queue, "queue", 64, "queue length")
	fs.BoolVar(&s.stamp, "stamp", false, "stamp events")
	return fs
}

func TestParsePrecedenceAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    settings
		wantErr string // empty: no error
	}{
		{name: "defaults", want: settings{addr: ":9000", interval: 2 * time.Second, queue: 64}},
		{name: "environment", env: map[string]string{"TEST_INTERVAL": "250ms", "TEST_STAMP": "true"},
			want: settings{addr: ":9000", interval: 250 * time.Millisecond, queue: 64, stamp: true}},
		{name: "command line wins", args: []string{"-queue", "8"}, env: map[string]string{"TEST_QUEUE": "16"},
			want: settings{addr: ":9000", interval: 2 * time.Second, queue: 8}},
		{name: "bad variable names variable and flag", env: map[string]string{"TEST_QUEUE": "many"},
			wantErr: `invalid value "many" for TEST_QUEUE (flag -queue): want a whole number`},
		{name: "bad duration", env: map[string]string{"TEST_INTERVAL": "2"},
			wantErr: "want a duration such as 2s"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "flag provided but not defined: -nope"},
		{name: "stray argument", args: []string{"extra"}, wantErr: `unexpected arguments: ["extra"]`},
		{name: "bad log format", env: map[string]string{"TEST_LOG_FORMAT": "xml"},
			wantErr: "-log-format (env TEST_LOG_FORMAT) must be text or json"},
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got settings
			fs := newTestFlags(&got)
			err := fs.Parse(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				var usage UsageError
				if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a UsageError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHelpListsVariables(t *testing.T) {
	var s settings
	fs := newTestFlags(&s)
	var out bytes.Buffer
	if err := fs.Parse([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-interval duration", "(env TEST_INTERVAL)", "-log-level", "(env TEST_LOG_LEVEL)", `(default "2s")`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"ok", nil, ExitOK, ""},
		{"help", flag.ErrHelp, ExitOK, ""},
		{"usage", Usagef("-queue must be at least 1"), ExitUsage, "cmd: -queue must be at least 1\n(-h lists the flags)\n"},
		{"failure", errors.New("listen: address in use"), ExitFailure, "cmd: listen: address in use\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := func(context.Context, []string, func(string) string, io.Writer) error { return tc.err }
			if code := Run(context.Background(), "cmd", cmd, nil, nil, &stderr); code != tc.code || stderr.String() != tc.out {
				t.Errorf("Run = %d %q, want %d %q", code, stderr.String(), tc.code, tc.out)
			}
		})
	}
}

func TestLoggerFollowsFlags(t *testing.T) {
	var s settings
	fs := newTestFlags(&s)
	if err := fs.Parse([]string{"-log-format", "json", "-log-level", "warn"}, func(string) string { return "" }, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := fs.Logger(&out)
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	if got := out.String(); strings.Contains(got, "hidden") || !strings.HasPrefix(got, "{") || !strings.Contains(got, `"msg":"shown"`) {
		t.Errorf("log output %q", got)
	}
}
