package main

import (
	"strings"
	"testing"

	"example.com/sse-on-envoy/tools/localstack"
)

func TestPrintMercure(t *testing.T) {
	s := &localstack.Stack{HTTPURL: "http://127.0.0.1:8080", HTTPSURL: "https://localhost:8443", CAFile: "/c/ca.pem", DemoURL: "http://localhost:3000"}
	var b strings.Builder
	printMercure(&b, s, "PUB.TOKEN", "SUB.TOKEN")
	out := b.String()
	for _, want := range []string{
		"export PUBLISHER_TOKEN=PUB.TOKEN", "export SUBSCRIBER_TOKEN=SUB.TOKEN",
		"http://localhost:3000/?hub=https%3A%2F%2Flocalhost%3A8443#publisher=PUB.TOKEN&subscriber=SUB.TOKEN",
		"curl -X POST http://127.0.0.1:8080/.well-known/mercure -H \"Authorization: Bearer $PUBLISHER_TOKEN\"",
		"curl -X POST --cacert /c/ca.pem https://localhost:8443/.well-known/mercure",
		"curl -N -g 'http://127.0.0.1:8080/.well-known/mercure?topic=",
		"-H \"Authorization: Bearer $SUBSCRIBER_TOKEN\" 'https://localhost:8443/.well-known/mercure?topic=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
