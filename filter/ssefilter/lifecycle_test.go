package ssefilter

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/internal/ssestream/lifecycletest"
)

// The shared lifecycles (internal/ssestream/lifecycletest) through the
// golang filter's callbacks, as Envoy calls them.
func TestSharedLifecycles(t *testing.T) {
	lifecycletest.Run(t, lifecycletest.Adapter{Name: adapterName, New: newLifecycleDriver})
}

type lifecycleDriver struct {
	f  api.StreamFilter
	cb *fakeCallbacks
	cc *fakeConfigCallbacks
}

func newLifecycleDriver(t *testing.T) lifecycletest.Driver {
	cc := newConfigCallbacks()
	parsed, err := ConfigParser{}.Parse(typedStruct(t, map[string]any{
		"allowed_origins": anySlice(lifecycletest.AllowedOrigins), "allow_credentials": true,
		"redact_query_params": anySlice(lifecycletest.RedactQueryParams),
		"extract":             jsonValue(t, lifecycletest.Extract),
	}), cc)
	if err != nil {
		t.Fatal(err)
	}
	parsed.(*config).now = func() time.Time { return time.Unix(1000, 0) }
	cb := newCallbacks()
	cb.info.route, cb.info.protocol = lifecycletest.Route, lifecycletest.Protocol
	return &lifecycleDriver{f: Factory(parsed, cb), cb: cb, cc: cc}
}

func (d *lifecycleDriver) RequestHeaders(h []string, end bool) {
	d.f.DecodeHeaders(newHeaders(h...), end)
}
func (d *lifecycleDriver) RequestBody(end bool) { d.f.DecodeData(&fakeBuffer{data: []byte("x")}, end) }
func (d *lifecycleDriver) RequestTrailers()     { d.f.DecodeTrailers(nil) }
func (d *lifecycleDriver) ResponseHeaders(h []string, end bool) {
	d.f.EncodeHeaders(newHeaders(h...), end)
}
func (d *lifecycleDriver) ResponseBody(slices []string, end bool) {
	d.f.EncodeData(&fakeBuffer{data: []byte(strings.Join(slices, ""))}, end)
}
func (d *lifecycleDriver) ResponseTrailers() { d.f.EncodeTrailers(nil) }

// Complete: Envoy calls OnStreamComplete, then writes the access log.
func (d *lifecycleDriver) Complete(end ssestream.End) {
	d.cb.info.details = end.Details
	if end.FlagsKnown {
		d.cb.properties["response.flags"] = strconv.FormatUint(end.ResponseFlags, 10)
	}
	d.f.OnStreamComplete()
	d.f.OnLog(nil, nil, nil, nil)
}

func (d *lifecycleDriver) Reply() int {
	if d.cb.reply == nil {
		return 0
	}
	return d.cb.reply.status
}

func (d *lifecycleDriver) Metadata() map[string]any {
	return d.cb.info.metadata[policy.MetadataNamespace]
}

func (d *lifecycleDriver) Stats() map[ssestream.StatID]int64 {
	out := map[ssestream.StatID]int64{}
	for _, s := range ssestream.Stats() {
		if st := d.cc.stats[s.Name]; st != nil {
			out[s.ID] = st.v
		}
	}
	return out
}

func (d *lifecycleDriver) Lines() []string { return d.cb.lines }

// jsonValue is a JSON document as the map a TypedStruct is made from.
func jsonValue(t *testing.T, doc string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
