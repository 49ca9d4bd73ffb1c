//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/accel-proxy/accel/accel"
	"github.com/accel-proxy/accel/policy"
)

// The hand-over protocol, over a Unix stream socket in the data directory
// (mode 0600: only the user accel runs as may take it over):
//
//	new → old  "takeover PID\n"
//	old → new  {"pid":N,"names":[...]}\n with the listening sockets as
//	           SCM_RIGHTS descriptors, in the order of names
//	new → old  "release\n"
//	old → new  "released\n" once it stopped accepting and closed the data
//	           directory's stores, or "error: ...\n"
//
// The new process then opens the data directory and accepts; the old one
// retires its connections and exits. A new process that goes away before
// "release" leaves the old one serving as before.
const handoverSocketName = "accel.sock"

// maxHandoverFDs bounds the descriptors one hand-over carries (listeners
// and the admin socket).
const maxHandoverFDs = 256

// handoverPath is where an accel serves its hand-over socket: in its data
// directory (the parent of the cache's directory, else of the session
// store's), which only one process holds at a time; "" when the config
// keeps nothing on disk.
func handoverPath(cfg *policy.Config) string {
	for _, d := range []string{cfg.Cache.Dir, cfg.TLSSessions.Dir} {
		if d != "" && d != "off" {
			return filepath.Join(filepath.Dir(filepath.Clean(d)), handoverSocketName)
		}
	}
	return ""
}

// handoverHello is the old process's answer to "takeover".
type handoverHello struct {
	PID   int      `json:"pid"`
	Names []string `json:"names"`
}

// serveHandover serves the hand-over socket at path until a takeover
// completes; it then sends the new process's pid on done. It must be
// called once Start holds the data directory: a file left at path is from
// a process that no longer holds it.
func serveHandover(path string, srv *accel.Server, log *slog.Logger, timeout time.Duration, done chan<- int) error {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	// The new process listens at the same path once it took over: this
	// one must not remove the file on close.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			pid, err := handOver(c, srv, timeout, ln)
			c.Close()
			if err != nil {
				log.Warn("takeover did not complete; still serving", "socket", path, "err", err)
				continue
			}
			done <- pid
			return
		}
	}()
	return nil
}

// handOver runs the old process's side of one takeover. It closes ln (the
// hand-over socket) before it answers "released", so that the new process
// can serve its own at the same path.
func handOver(c *net.UnixConn, srv *accel.Server, timeout time.Duration, ln *net.UnixListener) (int, error) {
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(timeout))
	line, err := r.ReadString('\n')
	var peer int
	if _, serr := fmt.Sscanf(line, "takeover %d\n", &peer); err != nil || serr != nil {
		return 0, fmt.Errorf("expected takeover, got %q (%v)", line, err)
	}
	names, files, err := srv.ListenerFiles()
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return 0, err
	}
	defer closeFiles(files)
	fds := make([]int, len(files))
	for i, f := range files {
		// Not f.Fd(): it would put the descriptor in blocking mode, and
		// with it the listening socket this process still accepts on
		// (they share one open file), so that closing it at Release
		// would wait for a connection to come.
		rc, err := f.SyscallConn()
		if err != nil {
			return 0, err
		}
		rc.Control(func(fd uintptr) { fds[i] = int(fd) })
	}
	hello, _ := json.Marshal(handoverHello{PID: os.Getpid(), Names: names})
	if _, _, err = c.WriteMsgUnix(append(hello, '\n'), syscall.UnixRights(fds...), nil); err != nil {
		return 0, err
	}
	// The new process checks its config and takes the sockets; until it
	// says release, this one serves on.
	c.SetDeadline(time.Now().Add(timeout))
	line, err = r.ReadString('\n')
	if err != nil || line != "release\n" {
		return 0, fmt.Errorf("the new process (pid %d) went away before release (%q, %v)", peer, line, err)
	}
	ln.Close()
	if err := srv.Release(); err != nil {
		// Released anyway: what failed to close is logged here, and the
		// new process opens the directory as it finds it.
		fmt.Fprintf(c, "released\n")
		return peer, fmt.Errorf("released with errors: %w", err)
	}
	c.SetDeadline(time.Now().Add(timeout))
	_, err = fmt.Fprintf(c, "released\n")
	return peer, err
}

// takeOver is the new process's side: it takes the listening sockets from
// the accel serving the hand-over socket at path, gives them to srv, and
// returns once the old process released the data directory. Any failure
// before "release" leaves the old process serving.
func takeOver(path string, srv *accel.Server, timeout time.Duration) (oldPID int, err error) {
	if path == "" {
		return 0, errors.New("-takeover: the config keeps no data directory (cache.dir and tls_sessions.dir are off), where the hand-over socket lives")
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return 0, fmt.Errorf("-takeover: no accel answers on %s: %w", path, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(uc, "takeover %d\n", os.Getpid()); err != nil {
		return 0, fmt.Errorf("-takeover: %s: %w", path, err)
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(4*maxHandoverFDs))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return 0, fmt.Errorf("-takeover: the accel on %s did not answer within %v: %w", path, timeout, err)
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return 0, fmt.Errorf("-takeover: %s: %w", path, err)
		}
		for _, m := range msgs {
			fds, err := syscall.ParseUnixRights(&m)
			if err != nil {
				return 0, fmt.Errorf("-takeover: %s: %w", path, err)
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "handover"))
			}
		}
	}
	r := bufio.NewReader(uc)
	msg := string(buf[:n])
	if !strings.HasSuffix(msg, "\n") {
		rest, err := r.ReadString('\n')
		if err != nil {
			closeFiles(files)
			return 0, fmt.Errorf("-takeover: %s: %w", path, err)
		}
		msg += rest
	}
	if strings.HasPrefix(msg, "error: ") {
		closeFiles(files)
		return 0, fmt.Errorf("-takeover: the accel on %s refused: %s", path, strings.TrimSpace(strings.TrimPrefix(msg, "error: ")))
	}
	var hello handoverHello
	if err := json.Unmarshal([]byte(msg), &hello); err != nil {
		closeFiles(files)
		return 0, fmt.Errorf("-takeover: %s: bad answer %q: %w", path, msg, err)
	}
	if err := srv.Adopt(hello.Names, files); err != nil {
		return 0, err
	}
	uc.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprint(uc, "release\n"); err != nil {
		return 0, fmt.Errorf("-takeover: %s: %w", path, err)
	}
	line, err := r.ReadString('\n')
	if err != nil || line != "released\n" {
		return 0, fmt.Errorf("-takeover: the accel on %s (pid %d) did not release its data directory: %q %v", path, hello.PID, line, err)
	}
	return hello.PID, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
