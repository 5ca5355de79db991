package envoyconfig

import (
	"fmt"
	"maps"
	"slices"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	jsonparserv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/content_parsers/json/v3"
	jsonmdv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/json_to_metadata/v3"
	ssemdv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/sse_to_metadata/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// SSEToMetadataFilter is Envoy's own filter that writes values from SSE
// event data into dynamic metadata (Envoy 1.38 and later).
const SSEToMetadataFilter = "envoy.filters.http.sse_to_metadata"

// SSEToMetadata is one value Envoy's sse_to_metadata filter reads out of
// every event's JSON data: Selectors are the object keys of its path
// ("usage", "total_tokens"), written as a number under Namespace:Key.
type SSEToMetadata struct {
	Selectors      []string
	Namespace, Key string
}

// AddSSEToMetadata puts Envoy's sse_to_metadata filter before the router
// of every HCM, with one JSON rule: what an operator configures to get an
// LLM stream's token count without a filter of their own.
func AddSSEToMetadata(b *bootstrapv3.Bootstrap, r SSEToMetadata) error {
	rule := &jsonmdv3.JsonToMetadata_Rule{
		OnPresent: &jsonmdv3.JsonToMetadata_KeyValuePair{MetadataNamespace: r.Namespace, Key: r.Key,
			Type: jsonmdv3.JsonToMetadata_NUMBER},
	}
	for _, s := range r.Selectors {
		rule.Selectors = append(rule.Selectors, &jsonmdv3.JsonToMetadata_Selector{
			Selector: &jsonmdv3.JsonToMetadata_Selector_Key{Key: s}})
	}
	parser, err := anypb.New(&jsonparserv3.JsonContentParser{Rules: []*jsonparserv3.JsonContentParser_RuleConfig{{Rule: rule}}})
	if err != nil {
		return err
	}
	cfg, err := anypb.New(&ssemdv3.SseToMetadata{ResponseRules: &ssemdv3.SseToMetadata_ProcessingRules{
		ContentParser: &corev3.TypedExtensionConfig{Name: "envoy.content_parsers.json", TypedConfig: parser},
	}})
	if err != nil {
		return err
	}
	return EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		i := slices.IndexFunc(hcm.HttpFilters, func(f *hcmv3.HttpFilter) bool { return f.GetName() == RouterFilter })
		if i < 0 {
			return fmt.Errorf("HCM %s has no router", hcm.GetStatPrefix())
		}
		f := &hcmv3.HttpFilter{Name: SSEToMetadataFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
		hcm.HttpFilters = slices.Insert(hcm.HttpFilters, i, f)
		return nil
	})
}

// AddAccessLogFields adds fields (name: format command) to the JSON format
// of every HCM's stdout access log.
func AddAccessLogFields(b *bootstrapv3.Bootstrap, fields map[string]string) error {
	found := false
	err := EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		for _, al := range hcm.GetAccessLog() {
			var out streamv3.StdoutAccessLog
			if al.GetTypedConfig().UnmarshalTo(&out) != nil {
				continue
			}
			js := out.GetLogFormat().GetJsonFormat()
			if js == nil {
				continue
			}
			for _, k := range slices.Sorted(maps.Keys(fields)) {
				js.Fields[k] = structpb.NewStringValue(fields[k])
			}
			if err := al.GetTypedConfig().MarshalFrom(&out); err != nil {
				return err
			}
			found = true
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("no stdout access log with a JSON format")
	}
	return err
}

// BalanceConnections makes every listener hand its connections to Envoy's
// workers in turn (exact_balance). A benchmark needs it: an HTTP/2 client's
// few connections otherwise land on one worker or on two at random, and
// that alone moves Envoy's CPU per event by a quarter from one run to the
// next.
func BalanceConnections(b *bootstrapv3.Bootstrap) error {
	ls := b.GetStaticResources().GetListeners()
	if len(ls) == 0 {
		return fmt.Errorf("no static listener")
	}
	for _, l := range ls {
		l.ConnectionBalanceConfig = &listenerv3.Listener_ConnectionBalanceConfig{
			BalanceType: &listenerv3.Listener_ConnectionBalanceConfig_ExactBalance_{
				ExactBalance: &listenerv3.Listener_ConnectionBalanceConfig_ExactBalance{}},
		}
	}
	return nil
}
