package diskfs

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ErrOpenTimeout is returned by Open when pebble did not open in time.
var ErrOpenTimeout = errors.New("diskfs: pebble did not open in time")

// Open opens the pebble database in dir, or gives up after wait: a damaged
// or full directory can keep pebble.Open retrying, and a start must go on
// without its persistence rather than wait for it. A database that opens
// after Open gave up is closed again, never leaked.
func Open(dir string, opts *pebble.Options, wait time.Duration) (*pebble.DB, error) {
	type opened struct {
		db  *pebble.DB
		err error
	}
	ch := make(chan opened, 1)
	abandon := make(chan struct{})
	go func() {
		db, err := pebble.Open(dir, opts)
		select {
		case ch <- opened{db, err}:
		case <-abandon:
			if err == nil {
				_ = db.Close()
			}
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.db, r.err
	case <-t.C:
		close(abandon)
		return nil, ErrOpenTimeout
	}
}
