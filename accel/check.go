package accel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/accel-proxy/accel/policy"
)

// Check does what a start does with cfg short of opening anything: the
// certificates are read and parsed, the listener addresses resolved, and
// every section checked by the package that owns it (wiring.go). It binds
// no port and opens no data directory, so it is safe to run beside the
// instance that serves cfg ("nginx -t").
func Check(cfg *policy.Config) error {
	_, err := check(cfg)
	return err
}

// check is Check, returning the settings it wired.
func check(cfg *policy.Config) (*settings, error) {
	set, err := wire(cfg)
	errs := []error{err}
	quiet := slog.New(slog.DiscardHandler)
	for i, lc := range cfg.Listen {
		if _, err := net.ResolveTCPAddr("tcp", lc.Address); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cfg.Where("listen", i, "address"), err))
		}
		if lc.TLS != nil {
			if _, err := buildTLSConfig(lc.TLS, quiet); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", cfg.Where("listen", i, "tls"), err))
			}
		}
	}
	return set, errors.Join(errs...)
}
