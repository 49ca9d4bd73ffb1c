//go:build !unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// Without Unix signals there is no reload or reopen by signal (the admin
// API's /reload still works); an interrupt drains and stops.
var (
	reloadSignal os.Signal = noSignal("reload")
	reopenSignal os.Signal = noSignal("reopen")
	stopSignals            = []os.Signal{os.Interrupt, syscall.SIGTERM}
)

// noSignal is a signal that never arrives.
type noSignal string

func (s noSignal) String() string { return string(s) }
func (noSignal) Signal()          {}

// raiseFileLimit has no descriptor limit to raise here.
func raiseFileLimit() (uint64, error) {
	return 0, errors.New("no descriptor limit on this system")
}
