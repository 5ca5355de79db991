package localstack

import (
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestDevTokens(t *testing.T) {
	for _, k := range []string{DevPublisherKey, DevSubscriberKey} {
		if len(k) < 32 {
			t.Errorf("dev key %q: the hub wants HS256 secrets of 32 bytes or more", k)
		}
	}
	pub, sub, err := DevTokens(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok, key, claim string
	}{{pub, DevPublisherKey, "publish"}, {sub, DevSubscriberKey, "subscribe"}} {
		var claims jwt.MapClaims
		if _, err := jwt.ParseWithClaims(tc.tok, &claims, func(*jwt.Token) (any, error) { return []byte(tc.key), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()); err != nil {
			t.Fatalf("%s token: %v", tc.claim, err)
		}
		m, _ := claims["mercure"].(map[string]any)
		sels, _ := m[tc.claim].([]any)
		if len(m) != 1 || !slices.Equal(sels, []any{"*"}) {
			t.Errorf("%s token's mercure claim %v, want only %s: [*]", tc.claim, claims["mercure"], tc.claim)
		}
	}
}

func TestReplicasGetTheDevKeys(t *testing.T) {
	args := mercureArgs()
	if !slices.Contains(args, DevPublisherKey) || !slices.Contains(args, DevSubscriberKey) {
		t.Errorf("replica args %q lack a dev key", args)
	}
}
