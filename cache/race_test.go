//go:build race

package cache

// raceEnabled: the race detector changes what the heap holds (sync.Pool
// drops items, instrumented code keeps more alive), so heap sizes mean
// nothing under it.
const raceEnabled = true
