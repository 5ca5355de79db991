package envoyconfig

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// The sse_to_metadata variant's edits of envoy-extproc.yaml: the filter
// right before the router, the fields in every access log.
func TestSSEToMetadataAndAccessLogFields(t *testing.T) {
	b, err := Load(filepath.Join("..", "..", "envoy", "envoy-extproc.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := RemoveExtProc(b); err != nil {
		t.Fatal(err)
	}
	if err := AddSSEToMetadata(b, SSEToMetadata{Selectors: []string{"usage", "total_tokens"}, Namespace: "llm", Key: "total_tokens"}); err != nil {
		t.Fatal(err)
	}
	if err := AddAccessLogFields(b, map[string]string{"llm_total_tokens": "%DYNAMIC_METADATA(llm:total_tokens)%"}); err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	// protojson varies its spacing on purpose: compare without it.
	var compact bytes.Buffer
	if err := json.Compact(&compact, out); err != nil {
		t.Fatal(err)
	}
	js := compact.String()
	for _, want := range []string{SSEToMetadataFilter, "total_tokens", `"llm_total_tokens":"%DYNAMIC_METADATA(llm:total_tokens)%"`} {
		if !strings.Contains(js, want) {
			t.Errorf("the edited config lacks %q", want)
		}
	}
	if strings.Index(js, SSEToMetadataFilter) > strings.LastIndex(js, `"`+RouterFilter+`"`) {
		t.Error("sse_to_metadata is not before the router")
	}
}

// Every listener balances its connections exactly over the workers.
func TestBalanceConnections(t *testing.T) {
	b, err := Load(filepath.Join("..", "..", "envoy", "envoy-module.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := BalanceConnections(b); err != nil {
		t.Fatal(err)
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetConnectionBalanceConfig().GetExactBalance() == nil {
			t.Errorf("listener %s does not balance exactly", l.GetName())
		}
	}
}
