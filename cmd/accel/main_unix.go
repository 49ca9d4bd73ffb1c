//go:build unix

package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
)

// The signals accel answers: SIGHUP reloads the config, SIGUSR1 reopens
// the access log, SIGUSR2 starts the binary again to take over (nginx's
// binary upgrade), SIGTERM and SIGINT drain and stop.
var (
	reloadSignal  os.Signal = syscall.SIGHUP
	reopenSignal  os.Signal = syscall.SIGUSR1
	upgradeSignal os.Signal = syscall.SIGUSR2
	stopSignals             = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
)

// startUpgrade starts this process's binary path (which an upgrade has
// replaced with the new binary) with the same arguments and -takeover; it
// takes the sockets over through the hand-over socket, and this process
// then drains and exits. A new process that fails is reaped and logged;
// this one keeps serving.
func startUpgrade(log *slog.Logger) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	args := os.Args[1:]
	if !slices.Contains(args, "-takeover") {
		args = append(slices.Clone(args), "-takeover")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() {
		if err := cmd.Wait(); err != nil {
			log.Error("upgrade: the new binary exited; still serving", "pid", cmd.Process.Pid, "err", err)
		}
	}()
	return cmd.Process.Pid, nil
}

// notifyReady tells systemd (a Type=notify unit) that this process serves
// and is the service's main process: after a takeover the new process is,
// and systemd keeps the service up when the old one exits. Without
// $NOTIFY_SOCKET it does nothing.
func notifyReady() error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd notify socket: %w", err)
	}
	defer c.Close()
	_, err = c.Write([]byte("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()) + "\n"))
	return err
}

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
