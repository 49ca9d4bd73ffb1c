// Package fleet owns what the instances of a fleet share through Redis
// beyond TLS sessions: purges. A purge sent to any instance is applied
// there and appended once to a Redis Stream; every instance follows the
// stream and applies the others' entries. Each instance keeps the id of
// the last entry it applied in a file of its data directory, so that one
// that was down replays what it missed before it serves again, or drops
// its whole cache when the stream was trimmed past that id.
package fleet
