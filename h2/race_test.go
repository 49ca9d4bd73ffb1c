//go:build race

package h2

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// allocation counts mean nothing under it (x/net's hpack.HuffmanDecode
// takes its buffer from one).
const raceEnabled = true
