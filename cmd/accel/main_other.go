//go:build !unix

package main

import (
	"errors"
	"log/slog"
	"os"
	"syscall"
)

// Without Unix signals there is no reload or reopen by signal (the admin
// API's /reload still works); an interrupt drains and stops.
var (
	reloadSignal  os.Signal = noSignal("reload")
	reopenSignal  os.Signal = noSignal("reopen")
	upgradeSignal os.Signal = noSignal("upgrade")
	stopSignals             = []os.Signal{os.Interrupt, syscall.SIGTERM}
)

// startUpgrade has no signal to come from and no socket hand-over.
func startUpgrade(*slog.Logger) (int, error) { return 0, errNoHandover }

// notifyReady: no systemd here.
func notifyReady() error { return nil }

// noSignal is a signal that never arrives.
type noSignal string

func (s noSignal) String() string { return string(s) }
func (noSignal) Signal()          {}

// raiseFileLimit has no descriptor limit to raise here.
func raiseFileLimit() (uint64, error) {
	return 0, errors.New("no descriptor limit on this system")
}
