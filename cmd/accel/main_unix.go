//go:build unix

package main

import (
	"os"
	"syscall"
)

// The signals accel answers: SIGHUP reloads the config, SIGUSR1 reopens
// the access log, SIGTERM and SIGINT drain and stop.
var (
	reloadSignal os.Signal = syscall.SIGHUP
	reopenSignal os.Signal = syscall.SIGUSR1
	stopSignals            = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
)

// raiseFileLimit lifts the soft descriptor limit to the hard one: a proxy
// holds two sockets per request in flight, and the usual soft 1024 is
// reached long before the CPU is.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
