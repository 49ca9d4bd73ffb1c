// Package rendezvous owns rendezvous (highest random weight) hashing, for
// every place where the instances of a fleet must agree on one owner per
// key without talking: the TLS session store's servers, and the member
// that fetches an object for the fleet. Every caller picks the same owner
// for a key whatever the order of its list, and removing a name moves only
// its keys.
package rendezvous

import "hash/fnv"

// Pick returns the index of the name with the highest score for key, -1
// for no names; a tie, however unlikely, goes to the greater name so that
// list order never matters.
func Pick(names []string, key string) int {
	best := -1
	var bestScore uint64
	for i, n := range names {
		sc := Score(n, key)
		if best < 0 || sc > bestScore || (sc == bestScore && n > names[best]) {
			best, bestScore = i, sc
		}
	}
	return best
}

// Score is the weight of name for key: FNV-1a over both, finished with the
// SplitMix64 mixer so that nearby inputs spread evenly.
func Score(name, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
