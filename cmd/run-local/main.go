// Command run-local runs the whole system on this machine without Docker
// (`make run-local`): certificates, the upstream, stock Envoy with the SSE
// policy as a dynamic module (envoy/envoy-module.yaml, bin/libsse.so), and
// the demo page, on the same ports as `make run`. -mode ext_proc runs
// envoy/envoy-extproc.yaml and the ext_proc server instead; with ENVOY_BIN
// pointing at an Envoy that has the golang extension, the default is the
// golang filter (envoy/envoy.yaml and its .so). Ctrl-C stops everything it
// started.
//
// It runs several upstream replicas (-replicas) behind Envoy and restarts
// any child that exits unexpectedly, with back-off, logging why. The
// replicas' Mercure hub verifies tokens with development keys
// (localstack.DevPublisherKey, DevSubscriberKey); run-local prints a
// publisher and a subscriber token and curl lines for both Envoy ports.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/tools/localstack"
)

func main() { cli.Main("run-local", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := cli.NewFlagSet("run-local", "RUN_LOCAL_")
	// ENVOY_BIN, which make sets, is the default: the Makefile and the
	// tests name the Envoy binary that way.
	envoyBin := fs.String("envoy", getenv("ENVOY_BIN"), "Envoy binary (default: $ENVOY_BIN)")
	dir := fs.String("dir", ".cache/run-local", "folder for certificates, rendered configs and logs")
	modeFlag := fs.String("mode", "", "adapter: module, ext_proc or golang; default golang if the Envoy has that extension, else module")
	replicas := fs.Int("replicas", localstack.DefaultReplicas, "upstream replicas behind Envoy (1 to 9)")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return err
	}
	if *replicas < 1 || *replicas > 9 {
		return cli.Usagef("%s must be 1 to 9, got %d", fs.Flag("replicas"), *replicas)
	}
	var mode localstack.Adapter
	if *modeFlag != "" {
		var err error
		if mode, err = localstack.ParseAdapter(*modeFlag); err != nil {
			return cli.Usagef("%s: %v", fs.Flag("mode"), err)
		}
	}
	if *envoyBin == "" {
		return errors.New("no Envoy: set ENVOY_BIN or run `make run-local`, which installs stock Envoy into .venv")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	workDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}

	buildCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	fmt.Println("building the upstream, the ext_proc server, nats-server and the certificate tool...")
	bins, err := localstack.Build(buildCtx, root, filepath.Join(workDir, "bin"), localstack.Binaries...)
	if err != nil {
		return err
	}
	opts := localstack.Options{
		Root:      root,
		Dir:       workDir,
		EnvoyBin:  *envoyBin,
		Bins:      bins,
		ServeDemo: true,
		Replicas:  *replicas,
		Logger:    fs.Logger(stderr),
		// The folder `make certs` and `make run` use, so the README's curl
		// commands work against either.
		CertDir: filepath.Join(root, "certs", "out"),
		Ports: localstack.Ports{
			HTTP: 8080, HTTPS: 8443, Admin: 9901,
			Upstream: 9000, UpstreamTLS: 9443,
			ExtProc: 9002, ExtProcAdmin: 9003,
			Demo: 3000,
			NATS: 4222, NATSMonitor: 8222,
		},
	}
	golang, err := localstack.HasGolangFilter(buildCtx, *envoyBin, workDir)
	if err != nil {
		return err
	}
	switch {
	case mode == "" && golang:
		mode = localstack.AdapterGolang
	case mode == "":
		mode = localstack.AdapterModule
	case mode == localstack.AdapterGolang && !golang:
		return fmt.Errorf("-mode golang: %s has no golang extension (it is in the contrib build); use -mode module", *envoyBin)
	}
	opts.Adapter = mode
	switch mode {
	case localstack.AdapterGolang:
		so := filepath.Join(workDir, "bin", "sse.so")
		fmt.Println("building the golang filter .so")
		cmd := exec.CommandContext(buildCtx, "go", "build", "-buildmode=c-shared", "-o", so, "./filter")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building the filter: %w\n%s", err, out)
		}
		opts.FilterSO = so
	case localstack.AdapterModule:
		fmt.Println("building the dynamic module (libsse.so)")
		if opts.ModuleDir, err = localstack.BuildModule(buildCtx, root, filepath.Join(workDir, "bin")); err != nil {
			return err
		}
	}

	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	defer cancelStart()
	s, err := localstack.Start(startCtx, opts)
	if err != nil {
		return err
	}
	defer s.Stop()
	pub, sub, err := localstack.DevTokens(tokenTTL)
	if err != nil {
		return err
	}
	printWelcome(s)
	printMercure(os.Stdout, s, pub, sub)

	<-ctx.Done()
	fmt.Println("\nstopping...")
	return nil
}

func printWelcome(s *localstack.Stack) {
	mode := map[localstack.Adapter]string{
		localstack.AdapterModule:  "stock Envoy + the SSE policy as a dynamic module (envoy/envoy-module.yaml)",
		localstack.AdapterExtProc: "stock Envoy + the ext_proc server (envoy/envoy-extproc.yaml)",
		localstack.AdapterGolang:  "Envoy with the golang filter (envoy/envoy.yaml)",
	}[s.Adapter]
	var b strings.Builder
	fmt.Fprintf(&b, "\nrunning: %s, %d upstream replicas\n\n", mode, len(s.Upstreams))
	fmt.Fprintf(&b, "  demo page      %s/   (and %s/ to see CORS refuse a stream)\n", s.DemoURL, s.DemoURLOtherOrigin)
	fmt.Fprintf(&b, "  Envoy admin    %s/stats?filter=sse\n", s.AdminURL)
	if s.Adapter == localstack.AdapterExtProc {
		fmt.Fprintf(&b, "  ext_proc stats %s/stats\n", s.ExtProcAdminURL)
	}
	fmt.Fprintf(&b, "  logs           %s/*.log\n", s.Dir)
	for i, u := range s.Upstreams {
		fmt.Fprintf(&b, "  replica %d      %s (pid %d; kill -9 it: it is restarted, streams move on)\n", i+1, s.UpstreamURLs[i], u.Process().PID())
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  curl -N -i %s/sse/events\n", s.HTTPURL)
	fmt.Fprintf(&b, "  curl -N -i %s/sse-with-tls/events\n", s.HTTPURL)
	fmt.Fprintf(&b, "  curl -N -i --cacert %s %s/sse/events\n", s.CAFile, s.HTTPSURL)
	fmt.Fprintf(&b, "  curl -N -i --cacert %s %s/sse-with-tls/events\n\n", s.CAFile, s.HTTPSURL)
	fmt.Print(b.String())
}

// tokenTTL is how long the printed Mercure tokens are valid.
const tokenTTL = 24 * time.Hour

// printMercure prints a publisher and a subscriber token for the hub
// (signed with the development keys the replicas verify) and curl lines
// that publish and subscribe through both Envoy listeners.
func printMercure(w io.Writer, s *localstack.Stack, publisher, subscriber string) {
	hub := "/.well-known/mercure"
	var b strings.Builder
	fmt.Fprintf(&b, "Mercure hub at %s%s and %s%s (development keys; tokens valid %s):\n\n", s.HTTPURL, hub, s.HTTPSURL, hub, tokenTTL)
	fmt.Fprintf(&b, "  export PUBLISHER_TOKEN=%s\n", publisher)
	fmt.Fprintf(&b, "  export SUBSCRIBER_TOKEN=%s\n\n", subscriber)
	fmt.Fprintf(&b, "  demo page with both tokens (in the fragment, never sent to a server):\n  %s/?hub=%s#publisher=%s&subscriber=%s\n\n",
		s.DemoURL, url.QueryEscape(s.HTTPSURL), publisher, subscriber)
	b.WriteString("  # subscribe (public updates; the token adds private ones)\n")
	fmt.Fprintf(&b, "  curl -N -g '%s%s?topic=https://example.com/books/{id}'\n", s.HTTPURL, hub)
	fmt.Fprintf(&b, "  curl -N -g --cacert %s -H \"Authorization: Bearer $SUBSCRIBER_TOKEN\" '%s%s?topic=https://example.com/books/{id}'\n", s.CAFile, s.HTTPSURL, hub)
	b.WriteString("  # publish (the answer is the update's id); add -d private=on for subscribers with a token only\n")
	fmt.Fprintf(&b, "  curl -X POST %s%s -H \"Authorization: Bearer $PUBLISHER_TOKEN\" -d topic=https://example.com/books/1 -d data='{\"title\":\"Dune\"}'\n", s.HTTPURL, hub)
	fmt.Fprintf(&b, "  curl -X POST --cacert %s %s%s -H \"Authorization: Bearer $PUBLISHER_TOKEN\" -d topic=https://example.com/books/2 -d data=secret -d private=on\n\n", s.CAFile, s.HTTPSURL, hub)
	b.WriteString("Ctrl-C stops everything.\n")
	fmt.Fprint(w, b.String())
}
