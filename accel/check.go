package accel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/policy"
)

// Check does what a start does with cfg short of opening anything: the
// certificates are read and parsed, the listener addresses resolved, and
// the pools, the session store and the admin API checked by the packages
// that own them. It binds no port and opens no data directory, so it is
// safe to run beside the instance that serves cfg ("nginx -t").
func Check(cfg *policy.Config) error {
	var errs []error
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
	for i, p := range cfg.Pools {
		uc := poolConfig(p)
		if err := uc.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cfg.Where("pools", i), err))
		}
	}
	sc := sessionConfig(cfg.TLSSessions)
	if err := sc.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", cfg.Where("tls_sessions"), err))
	}
	if cfg.Admin.Listen != "off" {
		_, err := admin.New(admin.Config{Listen: cfg.Admin.Listen, Token: cfg.Admin.Token, TokenEnv: cfg.Admin.TokenEnv}, nil, admin.Options{Log: quiet})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cfg.Where("admin"), err))
		}
	}
	if cfg.Log.AccessFormat == "template" {
		if _, err := parseTemplate(cfg.Log.AccessTemplate); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cfg.Where("log", "access_template"), err))
		}
	}
	if f := cfg.Log.AccessFile; f != "" {
		// The file itself is left alone (a running instance writes it);
		// its directory must be there.
		if fi, err := os.Stat(filepath.Dir(f)); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("%s: directory of %s does not exist", cfg.Where("log", "access_file"), f))
		}
	}
	return errors.Join(errs...)
}
