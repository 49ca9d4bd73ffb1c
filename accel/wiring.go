package accel

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/accel-proxy/accel/accesslog"
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/cache"
	"github.com/accel-proxy/accel/fleet"
	"github.com/accel-proxy/accel/h1"
	"github.com/accel-proxy/accel/h2"
	"github.com/accel-proxy/accel/internal/cfgerr"
	"github.com/accel-proxy/accel/policy"
	"github.com/accel-proxy/accel/tlsstore"
	"github.com/accel-proxy/accel/upstream"
)

// The wiring: policy parses the file and owns its schema; each package
// owns its Config, with the defaults of its zero fields and the checks of
// its values (Validate). This file alone maps the one onto the others. It
// adds no default to a package's: an unset key reaches the package as a
// zero field. (The fleet's peer timeout is accel's own, in peer.go.) A value a package refuses comes back as a *cfgerr.Error naming
// the field within the package's section, and is reported with the
// section's YAML path and the file's line.

// settings is one config generation as the packages take it, their
// defaults filled. Callbacks and loggers of the running server are added
// where the components are built, so that two generations compare equal
// when nothing that a package reads changed.
type settings struct {
	h1 h1.Config
	// h2 is listen[i].http2 with the limits' timeouts, by listener.
	h2 []h2.Config
	// pools are cfg.Pools[i] as upstream takes them.
	pools    []upstream.Config
	cache    cache.Config
	access   accesslog.Config
	sessions tlsstore.Config
	// admin is nil when admin.listen is off.
	admin *admin.Config
	// fleet is nil without fleet.redis.
	fleet *fleet.Config
	// peerTimeout bounds a fleet fetch from a member (peer.go).
	peerTimeout time.Duration
}

// wire maps cfg onto each package's Config and has each package fill its
// defaults and check its values. Every refusal is reported, each with its
// file:line and YAML path.
func wire(cfg *policy.Config) (*settings, error) {
	set := &settings{}
	var errs []error
	check := func(err error, section ...any) {
		if err != nil {
			errs = append(errs, placed(cfg, err, section))
		}
	}

	lim := cfg.Limits
	set.h1 = h1.Config{
		MaxHeadBytes:   int(lim.MaxHeadBytes),
		MaxTargetBytes: int(lim.MaxTargetBytes),
		HeaderTimeout:  lim.HeaderTimeout.D(),
		IdleTimeout:    lim.IdleTimeout.D(),
		ReadTimeout:    lim.ReadTimeout.D(),
		WriteTimeout:   lim.WriteTimeout.D(),
	}
	check(set.h1.Validate(), "limits")
	for i, lc := range cfg.Listen {
		hc := lc.HTTP2
		c := h2.Config{
			MaxConcurrentStreams: int(hc.MaxConcurrentStreams),
			MaxHeaderListSize:    int(hc.MaxHeaderListSize),
			MaxHeaderBlockSize:   int(hc.MaxHeaderBlockSize),
			MaxFrameSize:         int(hc.MaxFrameSize),
			MaxResets:            hc.MaxResets,
			MaxIdleFrames:        hc.MaxIdleFrames,
			AbuseWindow:          hc.AbuseWindow.D(),
			// One limits section bounds both fronts' connections.
			IdleTimeout:  set.h1.IdleTimeout,
			WriteTimeout: set.h1.WriteTimeout,
			ReadTimeout:  set.h1.ReadTimeout,
		}
		check(c.Validate(), "listen", i, "http2")
		set.h2 = append(set.h2, c)
	}

	for i, p := range cfg.Pools {
		uc := poolConfig(p)
		check(uc.Validate(), "pools", i)
		set.pools = append(set.pools, uc)
	}

	set.cache = cache.Config{
		MemoryBytes: int64(cfg.Cache.Memory),
		Dir:         dirOrOff(cfg.Cache.Dir),
		DiskBytes:   int64(cfg.Cache.Disk),
	}
	set.cache.EnsureDefaults()

	lg := cfg.Log
	set.access = accesslog.Config{
		Off:      lg.Access != nil && !*lg.Access,
		Format:   lg.AccessFormat,
		Template: lg.AccessTemplate,
		File:     lg.AccessFile,
		MaxSize:  int64(lg.AccessMaxSize),
		Keep:     lg.AccessKeep,
		JSON:     lg.Format == "json",
	}
	check(set.access.Validate(), "log")

	ts := cfg.TLSSessions
	set.sessions = tlsstore.Config{
		Mode:           ts.Mode,
		Backend:        ts.Backend,
		Addrs:          ts.Addrs,
		Dir:            dirOrOff(ts.Dir),
		Lifetime:       ts.Lifetime.D(),
		Timeout:        ts.Timeout.D(),
		RotationPeriod: ts.RotationPeriod.D(),
		KeyWindow:      ts.KeyWindow,
		Namespace:      ts.Namespace,
	}
	check(set.sessions.Validate(), "tls_sessions")

	if ac, on := adminConfig(cfg); on {
		check(ac.Validate(), "admin")
		set.admin = &ac
	}

	f := cfg.Fleet
	if f.Redis != "" {
		set.fleet = &fleet.Config{Addr: f.Redis, Stream: f.Stream, MaxLen: f.StreamMaxLen}
		if dir := set.cache.Dir; dir != "" {
			// Beside the cache it is about, in the data directory.
			set.fleet.StateFile = filepath.Join(filepath.Dir(dir), "fleet-purges.id")
		}
		check(set.fleet.Validate(), "fleet")
	}
	set.peerTimeout = f.PeerTimeout.D()
	if set.peerTimeout == 0 {
		set.peerTimeout = defaultPeerTimeout
	}
	return set, errors.Join(errs...)
}

// adminConfig maps the admin section; false when admin.listen is off.
func adminConfig(cfg *policy.Config) (admin.Config, bool) {
	a := cfg.Admin
	return admin.Config{Listen: a.Listen, Token: a.Token, TokenEnv: a.TokenEnv}, a.Listen != "off"
}

// AdminConfig is cfg's admin section as package admin takes it, its
// defaults filled, for a client of the API (accel purge); false when
// admin.listen is off.
func AdminConfig(cfg *policy.Config) (admin.Config, bool) {
	ac, on := adminConfig(cfg)
	ac.Validate() // a refused value is the server's to report; the defaults are filled first
	return ac, on
}

// placed puts a package's refusal at its place in the file: the field a
// *cfgerr.Error names within section, or the section itself.
func placed(cfg *policy.Config, err error, section []any) error {
	var fe *cfgerr.Error
	if errors.As(err, &fe) {
		path := append(append([]any(nil), section...), fe.Path...)
		return fmt.Errorf("%s: %s", cfg.Where(path...), fe.Msg)
	}
	return fmt.Errorf("%s: %w", cfg.Where(section...), err)
}

// poolConfig maps a pool's config onto upstream's, without the callbacks
// a running server adds.
func poolConfig(p policy.Pool) upstream.Config {
	uc := upstream.Config{
		Name:              p.Name,
		Balance:           p.Balance,
		MaxConnsPerServer: p.MaxConnsPerServer,
		QueueSize:         p.QueueSize,
		QueueTimeout:      p.QueueTimeout.D(),
		ConnectTimeout:    p.ConnectTimeout.D(),
		FirstByteTimeout:  p.FirstByteTimeout.D(),
		IdleTimeout:       p.IdleTimeout.D(),
		RetryBudget:       p.RetryBudget.D(),
		RedialWindow:      p.RedialWindow.D(),
		FailThreshold:     p.FailThreshold,
		FailWindow:        p.FailWindow.D(),
		Cooldown:          p.Cooldown.D(),
		HealthPath:        p.Health.Path,
		HealthInterval:    p.Health.Interval.D(),
		TLS:               upstream.TLS{CAFile: p.TLS.CAFile, ServerName: p.TLS.ServerName, CertFile: p.TLS.Cert, KeyFile: p.TLS.Key},
		TempDir:           p.Buffer.TempDir,
	}
	// Unset keeps upstream's default (2); upstream spells "none" as a
	// negative count, since its zero means the default. So do the buffer
	// sizes.
	if p.Retries != nil {
		uc.Retries = *p.Retries
		if uc.Retries == 0 {
			uc.Retries = -1
		}
	}
	if m := p.Buffer.Memory; m != nil {
		uc.BufferMemory = int(*m)
		if *m == 0 {
			uc.BufferMemory = -1
		}
	}
	if f := p.Buffer.MaxTempFile; f != nil {
		uc.BufferFile = int64(*f)
		if *f == 0 {
			uc.BufferFile = -1
		}
	}
	for _, sv := range p.Servers {
		addr, useTLS := sv.HostPort()
		uc.Servers = append(uc.Servers, upstream.ServerConfig{Addr: addr, Weight: sv.Weight, TLS: useTLS})
	}
	return uc
}

func dirOrOff(d string) string {
	if d == "off" || d == "" {
		return ""
	}
	return filepath.Clean(d)
}
