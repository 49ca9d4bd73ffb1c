package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The purge kinds, as paths and metric labels name them.
const (
	kindURL    = "url"
	kindPrefix = "prefix"
	kindTags   = "tags"
	kindAll    = "all"
)

// purgeRequest is a purge's arguments, from a JSON body or from form
// values (query string or urlencoded body).
type purgeRequest struct {
	URL    string   `json:"url"`
	Prefix string   `json:"prefix"`
	Tags   tagList  `json:"tags"`
	Soft   flexBool `json:"soft"`
}

// purgeAnswer is what every purge endpoint returns.
type purgeAnswer struct {
	Kind   string `json:"kind"`
	Purged int    `json:"purged"`
	Soft   bool   `json:"soft"`
}

// purge serves POST /purge/<kind>.
func (s *Server) purge(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Purger == nil {
			writeError(w, http.StatusNotImplemented, "the cache is off: nothing to purge")
			return
		}
		pr, err := readPurge(r, kind)
		if err != nil {
			writeError(w, badRequestStatus(err), err.Error())
			return
		}
		soft := bool(pr.Soft)
		var n int
		switch kind {
		case kindURL:
			n, err = s.opts.Purger.PurgeURL(pr.URL, soft)
		case kindPrefix:
			n, err = s.opts.Purger.PurgePrefix(pr.Prefix, soft)
		case kindTags:
			n, err = s.opts.Purger.PurgeTags(pr.Tags, soft)
		case kindAll:
			n, err = s.opts.Purger.PurgeAll(soft)
		}
		if err != nil {
			s.log.Error("purge failed", "kind", kind, pr.target(kind), "soft", soft, "err", err)
			writeError(w, http.StatusInternalServerError, "purge failed: "+err.Error())
			return
		}
		s.m.IncPurge(kind)
		s.log.Info("purged", "kind", kind, pr.target(kind), "soft", soft, "objects", n, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, purgeAnswer{Kind: kind, Purged: n, Soft: soft})
	}
}

// target is what a purge of kind names, for the audit log.
func (pr *purgeRequest) target(kind string) slog.Attr {
	switch kind {
	case kindURL:
		return slog.String("url", pr.URL)
	case kindPrefix:
		return slog.String("prefix", pr.Prefix)
	case kindTags:
		return slog.Any("tags", []string(pr.Tags))
	}
	return slog.Attr{}
}

// badRequestStatus is 413 for a body over maxBody, 400 for anything else
// a client sent wrong.
func badRequestStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// readPurge decodes and checks a purge's arguments. Unknown names are
// errors, so that a misspelt "soft" never turns into a hard purge.
func readPurge(r *http.Request, kind string) (purgeRequest, error) {
	var pr purgeRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		// An empty body is an empty object: POST /purge/all needs nothing.
		if err := dec.Decode(&pr); err != nil && !errors.Is(err, io.EOF) {
			return pr, fmt.Errorf("JSON body: %w", err)
		}
		if len(r.URL.RawQuery) > 0 {
			return pr, errors.New("send the arguments either as JSON or as form values, not both")
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return pr, err
		}
		if err := pr.fromForm(r.Form); err != nil {
			return pr, err
		}
	}
	return pr, pr.check(kind)
}

// fromForm reads url, prefix, tags (or tag) and soft. Each but tags may
// appear once.
func (pr *purgeRequest) fromForm(form url.Values) error {
	for name, vals := range form {
		if name != "tags" && name != "tag" && len(vals) > 1 {
			return fmt.Errorf("%s given %d times", name, len(vals))
		}
		switch name {
		case "url":
			pr.URL = vals[0]
		case "prefix":
			pr.Prefix = vals[0]
		case "tags", "tag":
			for _, v := range vals {
				pr.Tags = append(pr.Tags, splitTags(v)...)
			}
		case "soft":
			b, err := parseBool(vals[0])
			if err != nil {
				return err
			}
			pr.Soft = flexBool(b)
		default:
			return fmt.Errorf("unknown argument %q (known: url, prefix, tags, soft)", name)
		}
	}
	return nil
}

// check makes sure the kind's argument is there and well formed, and no
// other kind's argument is.
func (pr *purgeRequest) check(kind string) error {
	given := map[string]bool{kindURL: pr.URL != "", kindPrefix: pr.Prefix != "", kindTags: len(pr.Tags) > 0}
	for k, ok := range given {
		if ok && k != kind {
			return fmt.Errorf("%s does not apply to /purge/%s", k, kind)
		}
	}
	switch kind {
	case kindURL:
		return checkTarget(kindURL, pr.URL, "http://example.com/path?query or example.com/path")
	case kindPrefix:
		return checkTarget(kindPrefix, pr.Prefix, "https://example.com/static/ or example.com/static/")
	case kindTags:
		pr.Tags = dedupe(pr.Tags)
		if len(pr.Tags) == 0 {
			return errors.New("tags must name at least one tag")
		}
	}
	return nil
}

// checkTarget accepts what the cache can purge: an http or https URL with
// a host, or "host/path" for both schemes. A path without a host names
// nothing the cache stores, so it is refused rather than purging nothing.
func checkTarget(name, v, example string) error {
	bad := fmt.Errorf("%s must start with a host, like %s; got %q", name, example, v)
	rest := v
	if scheme, r, ok := strings.Cut(v, "://"); ok {
		if scheme = strings.ToLower(scheme); scheme != "http" && scheme != "https" {
			return bad
		}
		rest = r
	}
	if rest == "" || rest[0] == '/' || rest[0] == '?' {
		return bad
	}
	if _, err := url.Parse("http://" + rest); err != nil {
		return fmt.Errorf("%s %q: %w", name, v, err)
	}
	return nil
}

// splitTags splits a value the way origins write Surrogate-Key and
// Cache-Tag: by spaces or commas.
func splitTags(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// dedupe drops empty and repeated tags, keeping the first of each.
func dedupe(tags []string) []string {
	out := tags[:0]
	for _, t := range tags {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// parseBool accepts what curl users type: 1/0, true/false, yes/no, on/off,
// and an empty value as false.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, fmt.Errorf("soft must be true or false; got %q", v)
}

// tagList decodes from a JSON array of tags or from one string of
// space- or comma-separated tags.
type tagList []string

func (t *tagList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = splitTags(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("tags must be a string or an array of strings")
	}
	for _, v := range many {
		*t = append(*t, splitTags(v)...)
	}
	return nil
}

// flexBool decodes from a JSON boolean, or from a string or number that
// parseBool accepts ("1", 1), as shell scripts tend to write them.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	var v bool
	if err := json.Unmarshal(b, &v); err == nil {
		*f = flexBool(v)
		return nil
	}
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := parseBool(s)
	*f = flexBool(v)
	return err
}
