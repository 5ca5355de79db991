package envoyconfig

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// MercureRoute is the route of the Mercure hub in the repository's configs.
const MercureRoute = "mercure"

// SubscriptionLimit is the per-route local rate limit of route r (the
// Mercure hub's subscriptions per client address); nil if it has none.
func SubscriptionLimit(r *routev3.Route) (*ratelimitv3.LocalRateLimit, error) {
	a, ok := r.GetTypedPerFilterConfig()[RateLimitFilter]
	if !ok {
		return nil, nil
	}
	var fc routev3.FilterConfig
	if err := a.UnmarshalTo(&fc); err != nil {
		return nil, fmt.Errorf("route %s: %s: %w", r.GetName(), RateLimitFilter, err)
	}
	var rl ratelimitv3.LocalRateLimit
	if err := fc.GetConfig().UnmarshalTo(&rl); err != nil {
		return nil, fmt.Errorf("route %s: %s: %w", r.GetName(), RateLimitFilter, err)
	}
	return &rl, nil
}

// SetSubscriptionLimit sets the per-address bucket of every Mercure route
// (tests use a small one to see a refusal).
func SetSubscriptionLimit(b *bootstrapv3.Bootstrap, burst, perSecond uint32) error {
	found := false
	err := EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetName() != MercureRoute {
					continue
				}
				rl, err := SubscriptionLimit(r)
				if err != nil || rl == nil {
					return fmt.Errorf("route %s has no subscription limit: %v", r.GetName(), err)
				}
				for _, d := range rl.GetDescriptors() {
					d.TokenBucket.MaxTokens = burst
					d.TokenBucket.TokensPerFill.Value = perSecond
				}
				inner, err := anypb.New(rl)
				if err != nil {
					return err
				}
				outer, err := anypb.New(&routev3.FilterConfig{Config: inner})
				if err != nil {
					return err
				}
				r.TypedPerFilterConfig[RateLimitFilter] = outer
				found = true
			}
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("no %s route", MercureRoute)
	}
	return err
}
