package mercure

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms a Key can verify.
const (
	HS256 = "HS256"
	RS256 = "RS256"
)

// Key verifies the JWTs of one role (publishers or subscribers). The zero
// Key verifies nothing: every token is refused.
type Key struct {
	alg    string
	secret []byte
	public *rsa.PublicKey
	// byKID, from a JWKS, picks the public key by the token's kid.
	byKID map[string]*rsa.PublicKey
}

// minSecret keeps a typo'd or placeholder HMAC secret from passing as a
// key: RFC 7518 wants at least the hash size.
const minSecret = 32

// NewHMACKey is an HS256 key.
func NewHMACKey(secret []byte) (Key, error) {
	if len(secret) < minSecret {
		return Key{}, fmt.Errorf("mercure: HS256 secret of %d bytes, at least %d", len(secret), minSecret)
	}
	return Key{alg: HS256, secret: secret}, nil
}

// NewRSAKey is an RS256 key.
func NewRSAKey(pub *rsa.PublicKey) (Key, error) {
	if pub == nil || pub.N.BitLen() < 2048 {
		return Key{}, errors.New("mercure: RS256 needs an RSA public key of at least 2048 bits")
	}
	return Key{alg: RS256, public: pub}, nil
}

// LoadKey builds a key for alg from a secret given as a value or from a
// file: for HS256 the file holds the secret (one trailing newline is
// dropped), for RS256 a PEM public key (PKIX, PKCS #1 or a certificate) or
// a JWKS (JSON; the token's kid picks the key).
// With neither value nor file, the key is the zero Key.
func LoadKey(alg, value, file string) (Key, error) {
	if value != "" && file != "" {
		return Key{}, errors.New("mercure: give the key as a value or as a file, not both")
	}
	if value == "" && file == "" {
		return Key{}, nil
	}
	raw := []byte(value)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Key{}, fmt.Errorf("mercure: read key: %w", err)
		}
		raw = b
	}
	switch strings.ToUpper(alg) {
	case HS256:
		if file != "" {
			raw = []byte(strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r"))
		}
		return NewHMACKey(raw)
	case RS256:
		if trimmed := strings.TrimSpace(string(raw)); strings.HasPrefix(trimmed, "{") {
			return parseJWKS([]byte(trimmed))
		}
		pub, err := ParseRSAPublicKeyPEM(raw)
		if err != nil {
			return Key{}, err
		}
		return NewRSAKey(pub)
	default:
		return Key{}, fmt.Errorf("mercure: unsupported JWT algorithm %q (HS256 or RS256)", alg)
	}
}

// ParseRSAPublicKeyPEM reads the first PEM block of b as an RSA public key.
func ParseRSAPublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("mercure: RS256 key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("mercure: RS256 key: PEM block %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("mercure: RS256 key: %w", err)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("mercure: RS256 key: %T is not an RSA public key", key)
	}
	return pub, nil
}

// parseJWKS reads the RSA signing keys of a JWK Set (RFC 7517). Keys of
// other types or for other algorithms are skipped; a set with none usable
// is an error, as is a kid given twice.
func parseJWKS(b []byte) (Key, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Use string
			N, E               string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return Key{}, fmt.Errorf("mercure: JWKS: %w", err)
	}
	k := Key{alg: RS256, byKID: map[string]*rsa.PublicKey{}}
	for _, jk := range set.Keys {
		if jk.Kty != "RSA" || (jk.Alg != "" && jk.Alg != RS256) || (jk.Use != "" && jk.Use != "sig") {
			continue
		}
		n, errN := base64.RawURLEncoding.DecodeString(jk.N)
		e, errE := base64.RawURLEncoding.DecodeString(jk.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return Key{}, fmt.Errorf("mercure: JWKS key %q: bad n or e", jk.Kid)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if _, err := NewRSAKey(pub); err != nil {
			return Key{}, fmt.Errorf("JWKS key %q: %w", jk.Kid, err)
		}
		if _, dup := k.byKID[jk.Kid]; dup {
			return Key{}, fmt.Errorf("mercure: JWKS: kid %q given twice", jk.Kid)
		}
		k.byKID[jk.Kid] = pub
	}
	if len(k.byKID) == 0 {
		return Key{}, errors.New("mercure: JWKS holds no RSA signing key")
	}
	return k, nil
}

// Configured reports whether k can verify anything.
func (k Key) Configured() bool { return k.alg != "" }

// Alg is HS256, RS256, or "" for the zero Key.
func (k Key) Alg() string { return k.alg }

// Claims are what a verified token grants.
type Claims struct {
	// Publish and Subscribe are the mercure claim's selectors; nil when
	// the token grants none.
	Publish, Subscribe *Selectors
	// Expires is the token's exp, zero without one: what it grants ends
	// then, including a subscription opened with it.
	Expires time.Time
}

// mercureClaims is the token's payload. Decoding into fixed types is what
// refuses wrong claim types (a string where an array is expected, a
// string exp): the token is then malformed, not partly trusted.
type mercureClaims struct {
	jwt.RegisteredClaims
	Mercure *struct {
		Publish   []string `json:"publish"`
		Subscribe []string `json:"subscribe"`
	} `json:"mercure"`
}

// maxClaimSelectors bounds the selectors a token may carry, as the
// subscription's own are bounded.
const maxClaimSelectors = 256

// maxToken bounds a token before any parsing.
const maxToken = 16 << 10

// ErrUnauthorized is wrapped by every verification failure.
var ErrUnauthorized = errors.New("invalid token")

// Verify checks token's signature with k (only k's algorithm is accepted,
// so "none" and algorithm swaps fail), its exp and nbf if present, and the
// types of its claims, and returns what it grants.
func (k Key) Verify(token string, now time.Time) (*Claims, error) {
	if !k.Configured() {
		return nil, fmt.Errorf("%w: no key configured to verify it", ErrUnauthorized)
	}
	if len(token) > maxToken {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrUnauthorized, len(token), maxToken)
	}
	var c mercureClaims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if k.alg == HS256 {
			return k.secret, nil
		}
		if k.byKID != nil {
			kid, _ := t.Header["kid"].(string)
			if pub, ok := k.byKID[kid]; ok {
				return pub, nil
			}
			return nil, fmt.Errorf("no key with kid %.64q in the JWKS", kid)
		}
		return k.public, nil
	},
		jwt.WithValidMethods([]string{k.alg}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(0),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	claims := &Claims{}
	if c.ExpiresAt != nil {
		claims.Expires = c.ExpiresAt.Time
	}
	if c.Mercure == nil {
		return claims, nil
	}
	if claims.Publish, err = parseGranted(c.Mercure.Publish); err != nil {
		return nil, fmt.Errorf("%w: mercure.publish: %w", ErrUnauthorized, err)
	}
	if claims.Subscribe, err = parseGranted(c.Mercure.Subscribe); err != nil {
		return nil, fmt.Errorf("%w: mercure.subscribe: %w", ErrUnauthorized, err)
	}
	return claims, nil
}

func parseGranted(raw []string) (*Selectors, error) {
	if raw == nil {
		return nil, nil
	}
	return ParseSelectors(raw, maxClaimSelectors)
}

// Where a token came from.
const (
	FromNone   = ""
	FromHeader = "header"
	FromCookie = "cookie"
	FromQuery  = "query"
)

// CookieName and QueryParam carry a token for clients that cannot set the
// Authorization header (EventSource).
const (
	CookieName = "mercureAuthorization"
	QueryParam = "authorization"
)

// TokenFrom finds the request's token: the Authorization header (Bearer),
// else the mercureAuthorization cookie, else the authorization query
// parameter. A header that is not a Bearer token is an error rather than
// being skipped: the client meant to authenticate.
func TokenFrom(r *http.Request) (token, from string, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", FromHeader, fmt.Errorf("%w: Authorization header is not a Bearer token", ErrUnauthorized)
		}
		return strings.TrimSpace(tok), FromHeader, nil
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value, FromCookie, nil
	}
	if q := r.URL.Query().Get(QueryParam); q != "" {
		return q, FromQuery, nil
	}
	return "", FromNone, nil
}
