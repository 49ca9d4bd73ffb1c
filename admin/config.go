package admin

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/accel-proxy/accel/internal/cfgerr"
)

// Defaults for Config's zero fields.
const (
	DefaultListen   = "127.0.0.1:9090"
	DefaultTokenEnv = "ACCEL_ADMIN_TOKEN"
)

// minTokenLen is the length below which a token is accepted but logged as
// weak: long enough for a random token, short of refusing "changeme" in a
// developer's loopback setup.
const minTokenLen = 16

// Config is the admin listener's part of accel's config. The zero value
// listens on DefaultListen and reads the token from DefaultTokenEnv.
type Config struct {
	// Listen is the admin listener's host:port. Default "127.0.0.1:9090":
	// loopback, so that the API is reachable from the machine only unless
	// the operator says otherwise.
	Listen string
	// Token is the bearer token every endpoint but /healthz requires. If
	// empty, it is read from the TokenEnv environment variable, which keeps
	// it out of config files. With no token at all the server still starts
	// but answers 401 to everything except /healthz: a forgotten token
	// never opens the purge API, and never keeps the proxy from starting.
	Token string
	// TokenEnv names the environment variable read when Token is empty.
	// Default "ACCEL_ADMIN_TOKEN".
	TokenEnv string
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.TokenEnv == "" {
		c.TokenEnv = DefaultTokenEnv
	}
	return c
}

// Validate fills the zero fields with their defaults and checks the
// listen address and the token, naming the field as the config file's
// admin section spells it (a *cfgerr.Error).
func (c *Config) Validate() error {
	*c = c.withDefaults()
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" || strings.ContainsAny(host, " /") {
		return cfgerr.Errorf([]any{"listen"}, "%q is not host:port", c.Listen)
	}
	if _, _, err := c.token(); err != nil {
		if strings.TrimSpace(c.Token) != "" {
			return cfgerr.Errorf([]any{"token"}, "%v", err)
		}
		return cfgerr.Errorf([]any{"token_env"}, "%v", err)
	}
	return nil
}

// token returns the configured token and where it came from ("config" or
// "$NAME"), or "" when there is none. Surrounding white space is dropped,
// since a token pasted into a file or an env var often ends in a newline.
func (c Config) token() (tok, source string, err error) {
	tok, source = strings.TrimSpace(c.Token), "config"
	if tok == "" {
		tok, source = strings.TrimSpace(os.Getenv(c.TokenEnv)), "$"+c.TokenEnv
	}
	if tok == "" {
		return "", "", nil
	}
	if !isToken68(tok) {
		// The message names the source and never the token.
		return "", "", fmt.Errorf("token from %s: %w", source, errBadToken)
	}
	return tok, source, nil
}

var errBadToken = errors.New("a bearer token may hold only letters, digits and -._~+/ with trailing =")

// isToken68 reports whether s fits RFC 6750's b64token, the only form a
// client can send after "Bearer ".
func isToken68(s string) bool {
	end := strings.TrimRight(s, "=")
	if end == "" {
		return false
	}
	for i := 0; i < len(end); i++ {
		b := end[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("-._~+/", b) >= 0:
		default:
			return false
		}
	}
	return true
}
