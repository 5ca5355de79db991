package ssefilter

import (
	"net/http"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// InvalidRouteConfigDetails is the response code details (%RESPONSE_CODE_DETAILS%)
// of a request refused because its route's per-route config is invalid.
const InvalidRouteConfigDetails = "sse_invalid_route_config"

// invalidRouteFilter answers every request on a route whose per-route config
// did not parse. A misconfigured route is not a transient fault: a 500 says
// so, where passing the request through would serve it without the policy
// the operator asked for.
type invalidRouteFilter struct {
	api.PassThroughStreamFilter
	callbacks api.FilterCallbackHandler
	config    *config
}

func (f *invalidRouteFilter) DecodeHeaders(api.RequestHeaderMap, bool) api.StatusType {
	// Once per config: the error does not change, and a busy route would
	// otherwise flood the log.
	f.config.loggedOnce.Do(func() {
		f.callbacks.Log(api.Error, "sse: refusing the requests of a route whose typed_per_filter_config is invalid: "+
			f.config.invalid.Error())
	})
	f.callbacks.DecoderFilterCallbacks().SendLocalReply(http.StatusInternalServerError,
		"the sse filter's configuration for this route is invalid; Envoy's log names the field\n",
		map[string][]string{"content-type": {"text/plain; charset=utf-8"}}, -1, InvalidRouteConfigDetails)
	return api.LocalReply
}
