package envoyconfig

import (
	"fmt"
	"maps"
	"slices"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"example.com/sse-on-envoy/internal/routes"
)

// CORSFilter is Envoy's own CORS filter.
const CORSFilter = "envoy.filters.http.cors"

var extProcType = "type.googleapis.com/" + string(proto.MessageName(&extprocv3.ExternalProcessor{}))

// RemoveExtProc drops every ext_proc HTTP filter, leaving what else the
// HCMs run (the router): the same config as the ext_proc variant, minus the
// policy. It fails when there was none to drop, so a renamed filter cannot
// turn a comparison into one of two identical configs.
func RemoveExtProc(b *bootstrapv3.Bootstrap) error {
	removed := 0
	err := EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		n := len(hcm.HttpFilters)
		hcm.HttpFilters = slices.DeleteFunc(hcm.HttpFilters, isExtProc)
		removed += n - len(hcm.HttpFilters)
		return nil
	})
	if err == nil && removed == 0 {
		err = fmt.Errorf("no ext_proc filter to remove")
	}
	return err
}

// RemoveHTTPFilter drops the HTTP filters called name from every HCM; it
// fails when there is none.
func RemoveHTTPFilter(b *bootstrapv3.Bootstrap, name string) error {
	removed := 0
	err := EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		n := len(hcm.HttpFilters)
		hcm.HttpFilters = slices.DeleteFunc(hcm.HttpFilters, func(f *hcmv3.HttpFilter) bool { return f.GetName() == name })
		removed += n - len(hcm.HttpFilters)
		return nil
	})
	if err == nil && removed == 0 {
		err = fmt.Errorf("no HTTP filter %q to remove", name)
	}
	return err
}

func isExtProc(f *hcmv3.HttpFilter) bool { return f.GetTypedConfig().GetTypeUrl() == extProcType }

// NativeCORS is what an operator configures in Envoy itself instead of an
// SSE filter: Envoy's CORS filter with the policy's origins, and the
// policy's cache-control on every route's responses.
type NativeCORS struct {
	Origins          []string // exact origins
	AllowCredentials bool
	AllowMethods     string // "GET, OPTIONS"
	AllowHeaders     string
	MaxAgeSeconds    string
	CacheControl     string
}

// UseNativeCORS replaces the ext_proc filters with Envoy's CORS filter and
// puts c's policy on every virtual host, and c.CacheControl on every route's
// responses.
func UseNativeCORS(b *bootstrapv3.Bootstrap, c NativeCORS) error {
	if err := RemoveExtProc(b); err != nil {
		return err
	}
	filter, err := anypb.New(&corsv3.Cors{})
	if err != nil {
		return err
	}
	var origins []*matcherv3.StringMatcher
	for _, o := range c.Origins {
		origins = append(origins, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
	}
	policy, err := anypb.New(&corsv3.CorsPolicy{
		AllowOriginStringMatch: origins,
		AllowMethods:           c.AllowMethods,
		AllowHeaders:           c.AllowHeaders,
		MaxAge:                 c.MaxAgeSeconds,
		AllowCredentials:       wrapperspb.Bool(c.AllowCredentials),
	})
	if err != nil {
		return err
	}
	return EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		// CORS goes first, where the policy filter was: a preflight is
		// answered before anything else runs.
		hcm.HttpFilters = slices.Insert(hcm.HttpFilters, 0, &hcmv3.HttpFilter{
			Name:       CORSFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: filter},
		})
		rc := hcm.GetRouteConfig()
		if rc == nil {
			return fmt.Errorf("HCM %s has no inline route_config", hcm.GetStatPrefix())
		}
		for _, vh := range rc.GetVirtualHosts() {
			if vh.TypedPerFilterConfig == nil {
				vh.TypedPerFilterConfig = map[string]*anypb.Any{}
			}
			vh.TypedPerFilterConfig[CORSFilter] = policy
			for _, r := range vh.GetRoutes() {
				r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, &corev3.HeaderValueOption{
					Header:       &corev3.HeaderValue{Key: "cache-control", Value: c.CacheControl},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				})
			}
		}
		return nil
	})
}

// AddPrefixRoute puts a streaming route first on every virtual host: prefix
// to cluster, without the whole-response timeout (a subscription lasts) and
// with the SSE routes' 60 s idle timeout. The Mercure benchmark routes
// /.well-known/mercure with it, which the repository's configs do not serve.
func AddPrefixRoute(b *bootstrapv3.Bootstrap, name, prefix, cluster string) error {
	if _, err := Cluster(b, cluster); err != nil {
		return err
	}
	return EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		rc := hcm.GetRouteConfig()
		if rc == nil {
			return fmt.Errorf("HCM %s has no inline route_config", hcm.GetStatPrefix())
		}
		for _, vh := range rc.GetVirtualHosts() {
			vh.Routes = slices.Insert(vh.Routes, 0, &routev3.Route{
				Name:  name,
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          durationpb.New(0),
					IdleTimeout:      durationpb.New(routes.StreamIdleTimeout),
				}},
			})
		}
		return nil
	})
}

// AddResponseHeaders sets headers on every route's responses, replacing any
// the upstream sent.
func AddResponseHeaders(b *bootstrapv3.Bootstrap, headers map[string]string) error {
	keys := slices.Sorted(maps.Keys(headers))
	return EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		rc := hcm.GetRouteConfig()
		if rc == nil {
			return fmt.Errorf("HCM %s has no inline route_config", hcm.GetStatPrefix())
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				for _, k := range keys {
					r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, &corev3.HeaderValueOption{
						Header:       &corev3.HeaderValue{Key: k, Value: headers[k]},
						AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
					})
				}
			}
		}
		return nil
	})
}
