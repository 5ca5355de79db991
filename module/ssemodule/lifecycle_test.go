package ssemodule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/internal/ssestream/lifecycletest"
	"example.com/sse-on-envoy/module/abi"
)

// The shared lifecycles (internal/ssestream/lifecycletest) through the
// module's hooks, the fake's body delivery standing in for the C body hook
// (package abi holds that equal to sse.Scanner). On 1.37 the ABI gives no
// end of a stream the upstream did not finish: end=reset.
func TestSharedLifecycles(t *testing.T) {
	a := lifecycletest.Adapter{Name: adapterName, New: newLifecycleDriver}
	if !abi.EndKnown {
		a.UnseenEnd = "end=" + ssestream.ReasonReset
	}
	lifecycletest.Run(t, a)
}

type lifecycleDriver struct {
	f    *filter
	env  *fakeEnvoy
	d    *fakeDefiner
	logs *logLines
}

func newLifecycleDriver(t *testing.T) lifecycletest.Driver {
	c, d, logs := newTestConfig(t, fmt.Sprintf("allowed_origins: [%s]\nallow_credentials: true\nredact_query_params: [%s]\nextract: %s\n",
		`"`+strings.Join(lifecycletest.AllowedOrigins, `", "`)+`"`, strings.Join(lifecycletest.RedactQueryParams, ", "), lifecycletest.Extract))
	c.now = func() time.Time { return time.Unix(1000, 0) }
	env := newFakeEnvoy()
	env.attrs[abi.AttributeRouteName], env.attrs[abi.AttributeRequestProtocol] = lifecycletest.Route, lifecycletest.Protocol
	f := c.newFilter(env)
	env.reader = f
	return &lifecycleDriver{f: f, env: env, d: d, logs: logs}
}

func (d *lifecycleDriver) RequestHeaders(h []string, end bool) {
	d.env.setHeaders(abi.RequestHeaders, h...)
	d.f.OnRequestHeaders(end)
}
func (d *lifecycleDriver) RequestBody(end bool) { d.f.OnRequestBody(end) }
func (d *lifecycleDriver) RequestTrailers()     { d.f.OnRequestTrailers() }
func (d *lifecycleDriver) ResponseHeaders(h []string, end bool) {
	d.env.setHeaders(abi.ResponseHeaders, h...)
	d.f.OnResponseHeaders(end)
}
func (d *lifecycleDriver) ResponseBody(slices []string, end bool) { d.env.deliver(end, slices...) }
func (d *lifecycleDriver) ResponseTrailers()                      { d.f.OnResponseTrailers() }

// Complete: stream-complete (with what 1.40 can read of the end), then
// destroy.
func (d *lifecycleDriver) Complete(end ssestream.End) {
	d.env.attrs[abi.AttributeResponseCodeDetails] = end.Details
	if end.FlagsKnown {
		d.env.intAttrs = map[abi.Attribute]uint64{abi.AttributeResponseFlags: end.ResponseFlags}
	}
	d.f.OnStreamComplete()
	d.f.OnDestroy()
}

func (d *lifecycleDriver) Reply() int {
	if d.env.reply == nil {
		return 0
	}
	return d.env.reply.status
}

func (d *lifecycleDriver) Metadata() map[string]any {
	out := map[string]any{}
	for k, v := range d.env.metadata {
		if key, ok := strings.CutPrefix(k, policy.MetadataNamespace+":"); ok {
			out[key] = v
		}
	}
	return out
}

func (d *lifecycleDriver) Stats() map[ssestream.StatID]int64 {
	out := map[ssestream.StatID]int64{}
	for _, s := range ssestream.Stats() {
		out[s.ID] = d.env.stats[d.d.ids[StatName(s.Name)]]
	}
	return out
}

func (d *lifecycleDriver) Lines() []string {
	names := map[string]string{
		fmt.Sprint(int(abi.LogDebug)): "DEBUG", fmt.Sprint(int(abi.LogInfo)): "INFO",
		fmt.Sprint(int(abi.LogWarn)): "WARN", fmt.Sprint(int(abi.LogError)): "ERROR",
	}
	out := make([]string, len(*d.logs))
	for i, l := range *d.logs {
		level, msg, _ := strings.Cut(l, " ")
		out[i] = names[level] + " " + msg
	}
	return out
}
