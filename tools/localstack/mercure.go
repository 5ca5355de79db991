package localstack

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Development keys of the Mercure hub (HS256 secrets, 32 bytes or more):
// every replica a stack runs verifies publishers' and subscribers' tokens
// with them, as docker-compose.yml's replicas do. Never use them anywhere
// else: anyone who reads this file can sign a token.
const (
	DevPublisherKey  = "dev-publisher-secret-change-me-0123456789"
	DevSubscriberKey = "dev-subscriber-secret-change-me-012345678"
)

// Upstream variables the dev keys travel in (cmd/upstream: every flag falls
// back to UPSTREAM_<NAME>).
const (
	PublisherKeyEnv  = "UPSTREAM_MERCURE_PUBLISHER_JWT_KEY"
	SubscriberKeyEnv = "UPSTREAM_MERCURE_SUBSCRIBER_JWT_KEY"
)

// mercureArgs are the upstream flags that give a replica the dev keys;
// they come before Options.UpstreamArgs, which can override them.
func mercureArgs() []string {
	return []string{"-mercure-publisher-jwt-key", DevPublisherKey, "-mercure-subscriber-jwt-key", DevSubscriberKey}
}

// MercureToken signs an HS256 token with key whose mercure claim grants
// publish and subscribe (topic selectors; nil leaves the claim out), valid
// for ttl (0: no expiry). It is what cmd/mercure-token prints for an HS256
// key.
func MercureToken(key string, publish, subscribe []string, ttl time.Duration) (string, error) {
	grant := map[string][]string{}
	if publish != nil {
		grant["publish"] = publish
	}
	if subscribe != nil {
		grant["subscribe"] = subscribe
	}
	now := time.Now()
	claims := jwt.MapClaims{"mercure": grant, "iat": now.Unix()}
	if ttl > 0 {
		claims["exp"] = now.Add(ttl).Unix()
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		return "", fmt.Errorf("signing a Mercure token: %w", err)
	}
	return tok, nil
}

// DevTokens are a publisher token that may publish to any topic and a
// subscriber token that receives every private update, signed with the
// development keys, valid for ttl.
func DevTokens(ttl time.Duration) (publisher, subscriber string, err error) {
	if publisher, err = MercureToken(DevPublisherKey, []string{"*"}, nil, ttl); err != nil {
		return "", "", err
	}
	if subscriber, err = MercureToken(DevSubscriberKey, nil, []string{"*"}, ttl); err != nil {
		return "", "", err
	}
	return publisher, subscriber, nil
}
