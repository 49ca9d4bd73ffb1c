package policy

// Fleet is what the instances of a fleet share through Redis beyond the
// TLS session store.
type Fleet struct {
	// Redis (host:port), when set, carries purges to every instance: a
	// purge sent to any one is applied by all, and an instance that was
	// down replays what it missed before it serves again. Unset, purges
	// stay on the instance they were sent to.
	Redis string `yaml:"redis"`
	// Stream is the purge stream's key; default "accel:purges". Fleets
	// sharing one Redis set their own.
	Stream string `yaml:"stream"`
	// StreamMaxLen bounds the stream; default 100000. An instance down
	// for more purges than this drops its cache when it returns.
	StreamMaxLen int64 `yaml:"stream_max_len"`
}

func (f *Fleet) check(k *checker) {
	if f.Redis == "" {
		return
	}
	checkAddress(k, []any{"fleet", "redis"}, f.Redis)
	if f.Stream == "" {
		f.Stream = "accel:purges"
	}
	if f.StreamMaxLen == 0 {
		f.StreamMaxLen = 100000
	}
	if f.StreamMaxLen < 0 {
		k.failf([]any{"fleet", "stream_max_len"}, "is negative")
	}
}
