// Command certs writes a local CA and the server certificates Envoy and the
// upstream need into one folder (certs/out, git-ignored): `make certs`.
// Certificates still valid for a month are kept, so reruns do not break a
// running setup; -force makes new ones.
package main

import (
	"context"
	"io"
	"time"

	"example.com/sse-on-envoy/internal/cli"
)

func main() { cli.Main("certs", run) }

func run(_ context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := cli.NewFlagSet("certs", "CERTS_")
	out := fs.String("out", "certs/out", "folder to write the PEM files into")
	force := fs.Bool("force", false, "replace certificates that are still valid")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return err
	}
	log := fs.Logger(stderr)
	made, err := ensure(*out, *force, time.Now())
	if err != nil {
		return err
	}
	if made {
		log.Info("wrote a new CA and certificates", "dir", *out)
	} else {
		log.Info("kept the valid certificates (-force replaces them)", "dir", *out)
	}
	return nil
}
