package policy

// Fleet is what the instances of a fleet share through Redis beyond the
// TLS session store. The purge stream's settings are fleet.Config's, where
// their defaults and checks are.
type Fleet struct {
	// Redis (host:port), when set, carries purges to every instance: a
	// purge sent to any one is applied by all, and an instance that was
	// down replays what it missed before it serves again. Unset, purges
	// stay on the instance they were sent to.
	Redis string `yaml:"redis"`
	// Stream is the purge stream's key. Fleets
	// sharing one Redis set their own.
	Stream string `yaml:"stream"`
	// StreamMaxLen bounds the stream. An instance down
	// for more purges than this drops its cache when it returns.
	StreamMaxLen int64 `yaml:"stream_max_len"`
	// Members are the client listener addresses (host:port, cleartext,
	// without PROXY protocol) of every instance, this one included, for
	// routes with fleet_fetch: the member that rendezvous hashing gives a
	// cache key fetches it from the origin for the others.
	Members []string `yaml:"members"`
	// Self is this instance's entry in Members.
	Self string `yaml:"self"`
	// PeerTimeout bounds the connect to the owner and its silence; past
	// it the origin is asked directly (default: accel's, for its peers).
	PeerTimeout Duration `yaml:"peer_timeout"`
}

// check cross-checks members and self; the purge stream's settings are
// package fleet's to check (accel's wiring).
func (f *Fleet) check(k *checker) {
	if len(f.Members) == 0 {
		return
	}
	found := false
	for j, m := range f.Members {
		checkAddress(k, []any{"fleet", "members", j}, m)
		found = found || m == f.Self
	}
	if !found {
		k.failf([]any{"fleet", "self"}, "%q is not one of fleet.members", f.Self)
	}
}
