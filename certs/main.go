// Command certs writes a local CA and the server certificates Envoy and the
// upstream need into one folder (certs/out, git-ignored): `make certs`.
// Certificates still valid for a month are kept, so reruns do not break a
// running setup; -force makes new ones.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	out := flag.String("out", "certs/out", "folder to write the PEM files into")
	force := flag.Bool("force", false, "replace certificates that are still valid")
	flag.Parse()
	made, err := ensure(*out, *force, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
	if made {
		fmt.Printf("certs: wrote a new CA and certificates into %s\n", *out)
	} else {
		fmt.Printf("certs: %s holds valid certificates; kept them (-force to replace)\n", *out)
	}
}
