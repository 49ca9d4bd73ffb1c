//go:build !unix

package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/accel-proxy/accel/accel"
	"github.com/accel-proxy/accel/policy"
)

// errNoHandover: passing listening sockets between processes needs Unix
// domain sockets and SCM_RIGHTS.
var errNoHandover = errors.New("-takeover: seamless restart (socket hand-over) needs a Unix system; stop the running accel, then start this one")

func handoverPath(*policy.Config) string { return "" }

func serveHandover(string, *accel.Server, *slog.Logger, time.Duration, chan<- int) error {
	return errNoHandover
}

func takeOver(string, *accel.Server, time.Duration) (int, error) { return 0, errNoHandover }
