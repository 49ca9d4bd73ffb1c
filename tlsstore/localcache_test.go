package tlsstore

import (
	"strconv"
	"testing"
	"time"
)

func TestLRUEvictsAndExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newLRU(2)
	c.put("a", []byte("1"), now.Add(time.Minute))
	c.put("b", []byte("2"), now.Add(time.Second))
	c.get("a", now) // a is now the most recently used
	c.put("c", []byte("3"), now.Add(time.Minute))
	if _, ok := c.get("b", now); ok {
		t.Error("least recently used entry survived eviction")
	}
	if v, ok := c.get("a", now); !ok || string(v) != "1" {
		t.Errorf("get(a) = %q, %v", v, ok)
	}
	if _, ok := c.get("c", now.Add(time.Minute)); ok {
		t.Error("entry returned at its expiry time")
	}
	if c.add("a", []byte("x"), now.Add(time.Minute), now) {
		t.Error("add replaced a live entry")
	}
	if !c.add("c", []byte("4"), now.Add(time.Hour), now.Add(time.Minute)) {
		t.Error("add refused to replace an expired entry")
	}
}

func TestMemcachedExpiration(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		ttl  time.Duration
		want int32
	}{
		{time.Millisecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{12 * time.Hour, 43200},
		{31 * 24 * time.Hour, int32(now.Add(31 * 24 * time.Hour).Unix())},
	} {
		if got := expiration(tc.ttl, now); got != tc.want {
			t.Errorf("expiration(%v) = %d, want %d", tc.ttl, got, tc.want)
		}
	}
}

// Rendezvous hashing picks the same server whatever the list order, and
// spreads keys over all servers.
func TestRendezvousOrderAndSpread(t *testing.T) {
	addrs := []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}
	noop := func(string) kv { return nil }
	a := newRendezvous(addrs, noop)
	b := newRendezvous([]string{addrs[2], addrs[0], addrs[1]}, noop)
	counts := map[string]int{}
	for i := range 3000 {
		key := sessionKeyPrefix + strconv.Itoa(i)
		sa, sb := a.pick(key), b.pick(key)
		if sa.addr != sb.addr {
			t.Fatalf("key %q: %s in one order, %s in another", key, sa.addr, sb.addr)
		}
		counts[sa.addr]++
	}
	for _, addr := range addrs {
		if counts[addr] < 800 {
			t.Errorf("%s got %d of 3000 keys; want about 1000", addr, counts[addr])
		}
	}
}
