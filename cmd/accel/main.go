// Command accel runs the caching web accelerator.
//
//	accel -origin http://127.0.0.1:9000            # embedded defaults, :8080
//	accel -config /etc/accel/accel.yaml            # everything from one file
//	accel check -config /etc/accel/accel.yaml      # or accel -t: test the file, start nothing
//	accel purge -config /etc/accel/accel.yaml url http://example.com/a
//	accel version
//
// SIGHUP reloads the config file (a bad file is refused and the running
// config stays); SIGUSR1 reopens the access log file (after logrotate);
// SIGTERM and SIGINT drain in-flight requests and stop.
//
//	accel -config /etc/accel/accel.yaml -takeover  # seamless restart
//
// takes the listening sockets and the data directory over from the accel
// running with that config, which then finishes its connections and
// exits: a binary upgrade refuses no connection (handover_unix.go).
// SIGUSR2 makes a running accel start its own binary so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/accel-proxy/accel/accel"
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/policy"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// command is a word accel takes before its flags.
type command struct {
	name, what string
	run        func(args []string, stdout, stderr io.Writer) int
}

// subcommands lists the commands; a first argument that is neither one of
// them nor a flag is an error, never ignored. (A function, not a
// variable, since usage refers to it and run to usage.)
func subcommands() []command {
	return []command{
		{"check", "test the config (certificates, addresses, everything a start checks) and exit; same as -t", func(args []string, _, stderr io.Writer) int {
			return run(append([]string{"-t"}, args...), stderr)
		}},
		{"purge", "purge the cache through the admin API (accel purge -h)", runPurge},
		{"soak", "drive a running accel with a mixed load and check its growth (accel soak -h)", runSoak},
		{"version", "print the version, commit and Go version", func(_ []string, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, admin.ReadBuild())
			return 0
		}},
	}
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return run(args, stderr)
	}
	for _, c := range subcommands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	if args[0] == "help" {
		usage(stdout, nil)
		return 0
	}
	fmt.Fprintf(stderr, "accel: unknown command %q; run 'accel -h' for the commands\n", args[0])
	return 2
}

// usage prints the subcommands, then the serving flags of fs.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "usage: accel [flags]            serve (flags below)\n       accel COMMAND [args]\n\ncommands:\n")
	for _, c := range subcommands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.what)
	}
	if fs != nil {
		fmt.Fprint(w, "\nflags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type flags struct {
	listen     listFlag
	origins    listFlag
	config     string
	tlsCert    string
	tlsKey     string
	selfSigned bool
	dataDir    string
	adminAddr  string
	drain      time.Duration
	check      bool
	takeover   bool
	// takeoverTimeout bounds each step of a takeover, on both sides.
	takeoverTimeout time.Duration
}

// handoverGrace is how long a process that handed over waits for its idle
// HTTP/1 connections' next request (answered with Connection: close)
// before it closes them (accel.Server.Retire).
const handoverGrace = time.Second

func run(args []string, stderr io.Writer) int {
	var f flags
	fs := flag.NewFlagSet("accel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&f.listen, "listen", "client listener `address` (repeatable; default :8080)")
	fs.Var(&f.origins, "origin", "origin server `URL` such as http://127.0.0.1:9000 (repeatable)")
	fs.StringVar(&f.config, "config", "", "config `file` (YAML); flags other than -config are then not allowed")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM) for the listeners")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key `file` (PEM) for the listeners")
	fs.BoolVar(&f.selfSigned, "tls-self-signed", false, "serve TLS with a throwaway self-signed certificate (local trials)")
	fs.StringVar(&f.dataDir, "data-dir", policy.DefaultDataDir, "`directory` for the persistent cache and TLS sessions")
	fs.StringVar(&f.adminAddr, "admin", admin.DefaultListen, "admin API `address`, or off")
	fs.DurationVar(&f.drain, "drain-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.BoolVar(&f.check, "t", false, "test the config and exit (accel check): 0 when it would start, 1 with every problem listed")
	fs.BoolVar(&f.takeover, "takeover", false, "seamless restart: take the listening sockets and the data dir over from the accel running with this config, which then drains and exits")
	fs.DurationVar(&f.takeoverTimeout, "takeover-timeout", 10*time.Second, "how long each step of a takeover waits for the other process")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "accel: unexpected argument %q; run 'accel -h' for the commands\n", fs.Arg(0))
		return 2
	}
	cfg, source, err := loadConfig(&f, fs)
	if f.check {
		return check(cfg, err, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "accel:", err)
		return 2
	}
	// The signals an operator sends a running accel are caught before
	// its first log line: a SIGHUP, or logrotate's SIGUSR1, that came
	// while the cache opens would end the process (their default action).
	// They wait in sigs until accel serves. A stop signal still ends a
	// start at once.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, reloadSignal, reopenSignal, upgradeSignal)
	defer signal.Stop(sigs)
	log := newLogger(cfg, stderr)
	if n, err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the file descriptor limit", "err", err)
	} else {
		log.Info("file descriptor limit", "nofile", n)
	}
	srv, err := accel.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "accel:", err)
		return 1
	}
	setMemoryLimit(srv.CacheMemory(), log)
	srv.SetConfigSource(source)
	sockPath := handoverPath(cfg)
	if f.takeover {
		pid, err := takeOver(sockPath, srv, f.takeoverTimeout)
		if err != nil {
			fmt.Fprintln(stderr, "accel:", err)
			return 1
		}
		log.Info("took over the listening sockets and the data dir", "from_pid", pid, "socket", sockPath)
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(stderr, "accel:", err)
		return 1
	}
	handedOver := make(chan int, 1)
	if sockPath != "" {
		if err := serveHandover(sockPath, srv, log, f.takeoverTimeout, handedOver); err != nil {
			log.Warn("no hand-over socket: a seamless restart (-takeover) cannot replace this process", "socket", sockPath, "err", err)
		}
	}
	for _, a := range srv.Addrs() {
		log.Info("listening", "addr", a.String())
	}
	if a := srv.AdminAddr(); a != nil {
		log.Info("admin API", "addr", a.String())
	}
	signal.Notify(sigs, stopSignals...)
	if err := notifyReady(); err != nil {
		log.Warn("could not tell systemd the service is ready", "err", err)
	}
	for {
		var sig os.Signal
		select {
		case pid := <-handedOver:
			log.Info("handed over to the new process; finishing connections", "pid", pid, "timeout", f.drain)
			ctx, cancel := context.WithTimeout(context.Background(), f.drain)
			err := srv.Retire(ctx, handoverGrace)
			cancel()
			if err != nil {
				log.Warn("stopped with requests still running", "err", err)
				return 1
			}
			log.Info("stopped")
			return 0
		case sig = <-sigs:
		}
		switch sig {
		case upgradeSignal:
			if pid, err := startUpgrade(log); err != nil {
				log.Error("upgrade: could not start the new binary", "err", err)
			} else {
				log.Info("upgrade: started the binary with -takeover", "pid", pid)
			}
			continue
		case reloadSignal:
			if err := srv.Reload(); err != nil {
				log.Error("reload failed", "err", err)
			}
			continue
		case reopenSignal:
			if err := srv.ReopenLogs(); err != nil {
				log.Error("reopening the access log failed; still writing to the old file", "err", err)
			} else {
				log.Info("access log reopened")
			}
			continue
		}
		log.Info("draining", "signal", sig.String(), "timeout", f.drain)
		ctx, cancel := context.WithTimeout(context.Background(), f.drain)
		err := srv.Shutdown(ctx)
		cancel()
		if err != nil {
			log.Warn("stopped with requests still running", "err", err)
			return 1
		}
		log.Info("stopped")
		return 0
	}
}

// check is "accel check" and "accel -t": the config as loaded (err when
// it did not parse or validate), then everything a start would check,
// without binding a port or opening a data directory, so it runs beside
// the instance it is about. Every problem is printed, one per line.
func check(cfg *policy.Config, err error, stderr io.Writer) int {
	if err == nil {
		err = accel.Check(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "accel: configuration test failed")
		return 1
	}
	fmt.Fprintf(stderr, "accel: %s: configuration ok (%d listeners, %d pools, %d routes)\n", cfg.File, len(cfg.Listen), len(cfg.Pools), len(cfg.Routes))
	return 0
}

// loadConfig reads the config file, or builds one from the quick-start
// flags, and returns how to read it again on reload.
func loadConfig(f *flags, fs *flag.FlagSet) (*policy.Config, func() (*policy.Config, error), error) {
	if f.config != "" {
		var extra []string
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "config", "drain-timeout", "t", "takeover", "takeover-timeout":
			default:
				extra = append(extra, "-"+fl.Name)
			}
		})
		if len(extra) > 0 {
			return nil, nil, fmt.Errorf("%s cannot be combined with -config: set it in the file", strings.Join(extra, ", "))
		}
		source := func() (*policy.Config, error) { return policy.Load(f.config) }
		cfg, err := source()
		return cfg, source, err
	}
	data, err := flagsYAML(f)
	if err != nil {
		return nil, nil, err
	}
	source := func() (*policy.Config, error) { return policy.Parse(data, "command line") }
	cfg, err := source()
	return cfg, source, err
}

// flagsYAML writes the quick-start flags as a config file would say them,
// so that flags and files go through one validation.
func flagsYAML(f *flags) ([]byte, error) {
	if len(f.origins) == 0 {
		return nil, errors.New("no origin: give -origin http://HOST:PORT (or -config FILE)")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if len(f.listen) == 0 {
		f.listen = listFlag{":8080"}
	}
	type m = map[string]any
	var listeners []m
	for _, a := range f.listen {
		l := m{"address": a}
		switch {
		case f.tlsCert != "":
			l["tls"] = m{"certificates": []m{{"cert": f.tlsCert, "key": f.tlsKey}}}
		case f.selfSigned:
			l["tls"] = m{"self_signed": true}
		}
		listeners = append(listeners, l)
	}
	var servers []m
	for _, o := range f.origins {
		addr, err := originAddr(o)
		if err != nil {
			return nil, err
		}
		servers = append(servers, m{"address": addr})
	}
	admin := m{"listen": f.adminAddr}
	cacheDir, sessionsDir := policy.DataDirs(f.dataDir)
	return yaml.Marshal(m{
		"listen":       listeners,
		"pools":        []m{{"name": "default", "servers": servers}},
		"routes":       []m{{"path": "/", "pool": "default", "cache": m{"enabled": true}}},
		"cache":        m{"dir": cacheDir},
		"tls_sessions": m{"dir": sessionsDir},
		"admin":        admin,
	})
}

func originAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("-origin %q is not a URL like http://127.0.0.1:9000", raw)
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("-origin %q: origins are reached over cleartext HTTP/1.1 (http://)", raw)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80"), nil
	}
	return u.Host, nil
}

func newLogger(cfg *policy.Config, w io.Writer) *slog.Logger {
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
