package accesslog

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/accel-proxy/accel/internal/cfgerr"
)

// Formats of Config.Format.
const (
	FormatLog      = "log"
	FormatCombined = "combined"
	FormatJSON     = "json"
	FormatTemplate = "template"
)

// DefaultKeep is Config.Keep's default: the rotated files kept.
const DefaultKeep = 5

// Config is the access log: the access keys of the config file's log
// section. The zero value logs every request as a record of the process
// log.
type Config struct {
	// Off turns the access log off.
	Off bool
	// Format is "log" (default: a record of the process log, in its
	// format), "combined" (nginx's and Apache's), "json" (one object a
	// line, durations in seconds) or "template" (Template).
	Format string
	// Template is the line of format "template", with nginx's $variables
	// ($remote_addr, $status, $request_time, ...).
	Template string
	// File is the access log's file; empty writes to stderr with the rest
	// of the log. It is reopened by Reopen (SIGUSR1, after an external
	// logrotate moved it).
	File string
	// MaxSize rotates File when it would grow past this many bytes (file
	// to file.1, file.1 to file.2, ...); 0 never.
	MaxSize int64
	// Keep is how many rotated files are kept; default 5.
	Keep int
	// JSON writes format "log" records to File as JSON, as the process
	// log's own format says; text otherwise.
	JSON bool
}

// Validate fills the zero fields with their defaults and checks the rest,
// naming the field as the config file's log section spells it (a
// *cfgerr.Error). It reads no file but for the directory of File.
func (c *Config) Validate() error {
	switch c.Format {
	case "":
		c.Format = FormatLog
	case FormatLog, FormatCombined, FormatJSON:
	case FormatTemplate:
		if c.Template == "" {
			return cfgerr.Errorf([]any{"access_template"}, "access_format template needs a template")
		}
		if _, err := parseTemplate(c.Template); err != nil {
			return cfgerr.Errorf([]any{"access_template"}, "%v", err)
		}
	default:
		return cfgerr.Errorf([]any{"access_format"}, "%q is not log, combined, json or template", c.Format)
	}
	if c.Keep < 0 {
		return cfgerr.Errorf([]any{"access_keep"}, "is negative")
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if f := c.File; f != "" && !c.Off {
		// The file itself is left alone (a running instance writes it);
		// its directory must be there.
		if fi, err := os.Stat(filepath.Dir(f)); err != nil || !fi.IsDir() {
			return cfgerr.Errorf([]any{"access_file"}, "directory of %s does not exist", f)
		}
	}
	return nil
}

// Log is the access log of one config generation: whether it is on, its
// format, and where it goes. Write may be called from any goroutine.
type Log struct {
	on     bool
	format string     // log, combined, json, template
	tmpl   []tmplPart // format template
	// log receives format "log" records; out the other formats' lines.
	log  *slog.Logger
	out  io.Writer
	file *File // nil when writing to stderr
	bufs sync.Pool
}

var stderrLines = &lockedWriter{w: os.Stderr}

// New validates cfg and builds its access log. Records of format "log"
// go to procLog unless cfg has a File. reuse is the running generation's
// file: kept when path, size and keep are the same, so that a reload
// neither reopens nor loses lines.
func New(cfg Config, procLog *slog.Logger, reuse *File) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Log{on: !cfg.Off, format: cfg.Format, log: procLog, out: stderrLines}
	a.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	if a.format == FormatTemplate {
		a.tmpl, _ = parseTemplate(cfg.Template) // checked by Validate
	}
	if !a.on || cfg.File == "" {
		return a, nil
	}
	if reuse != nil && reuse.path == cfg.File && reuse.maxSize == cfg.MaxSize && reuse.keep == cfg.Keep {
		reuse.hold()
		a.file = reuse
	} else {
		f, err := OpenFile(cfg.File, cfg.MaxSize, cfg.Keep)
		if err != nil {
			return nil, cfgerr.Errorf([]any{"access_file"}, "%v", err)
		}
		a.file = f
	}
	a.out = a.file
	if a.format == FormatLog {
		if cfg.JSON {
			a.log = slog.New(slog.NewJSONHandler(a.file, nil))
		} else {
			a.log = slog.New(slog.NewTextHandler(a.file, nil))
		}
	}
	return a, nil
}

// On reports whether the log writes anything: a caller may skip making
// the record when it does not.
func (a *Log) On() bool { return a.on }

// File is the file the log writes, nil for stderr.
func (a *Log) File() *File { return a.file }

// Release ends this log's use of its file, once the last line of its
// config generation is written: the file closes when no Log writes to it
// any more (a reload that keeps the file passes it on to the next one).
func (a *Log) Release() error {
	if a.file == nil {
		return nil
	}
	return a.file.release()
}

// Write formats r and writes it as one line.
func (a *Log) Write(r *Record) {
	if !a.on {
		return
	}
	if a.format == "log" {
		a.slogRecord(r)
		return
	}
	bp := a.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	switch a.format {
	case "combined":
		b = appendCombined(b, r)
	case "json":
		b = appendJSON(b, r)
	case "template":
		for _, p := range a.tmpl {
			b = p.append(b, r)
		}
	}
	b = append(b, '\n')
	a.out.Write(b)
	*bp = b
	a.bufs.Put(bp)
}

func (a *Log) slogRecord(r *Record) {
	if !a.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("proto", r.Proto),
		slog.String("method", string(r.Method)),
		slog.String("host", r.Host),
		slog.String("path", string(r.Target)),
		slog.Int("status", r.Status),
		slog.Int64("bytes", r.Bytes),
		slog.Float64("duration", r.Duration.Seconds()),
		slog.String("cache", r.Cache),
		slog.String("route", r.Route),
		slog.String("upstream", r.Upstream),
		slog.String("client", r.Client),
		slog.String("request_id", string(r.RequestID)),
	}
	if r.UpstreamTime >= 0 {
		attrs = append(attrs, slog.Float64("upstream_time", r.UpstreamTime.Seconds()))
	}
	for _, f := range []struct {
		k string
		v []byte
	}{{"user_agent", r.UserAgent}, {"referer", r.Referer}, {"xff", r.XFF}} {
		if f.v != nil {
			attrs = append(attrs, slog.String(f.k, string(f.v)))
		}
	}
	if r.Refused != "" {
		attrs = append(attrs, slog.String("refused", r.Refused))
	}
	if r.Err != "" {
		attrs = append(attrs, slog.String("err", r.Err))
	}
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

// Reopen reopens the access file (SIGUSR1); nothing to do on stderr.
func (a *Log) Reopen() error {
	if a.file == nil {
		return nil
	}
	return a.file.Reopen()
}
