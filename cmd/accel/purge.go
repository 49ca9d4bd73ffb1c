package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/accel-proxy/accel/accel"
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/policy"
)

const purgeUsage = `usage: accel purge [flags] KIND [ARG...]

  url URL...        every variant of each URL (http://host/path?query, or host/path for both schemes)
  prefix PREFIX...  every URL under each prefix (host/path, or http://host/path for one scheme)
  tag TAG...        every object carrying any of the tags (Surrogate-Key, Cache-Tag)
  all               everything

Prints the number of objects purged. Exit status 0 when something was
purged, 3 when the purge matched nothing, 1 when the admin API refused or
could not be reached, 2 on a usage error.

A URL is keyed as the clients sent its host: with the port unless it is the
scheme's default (the access log's host field shows it as keyed), so
http://127.0.0.1/p does not purge what clients fetched from 127.0.0.1:8080.

With -config, the admin address and the token (admin.token, or the variable
admin.token_env names) come from accel's config file.

flags (before or right after KIND):
`

// runPurge is "accel purge": it calls the admin API, so that scripts purge
// without writing curl lines. The token comes from an environment variable
// only, never a flag, since a command line is visible to every user of the
// machine.
func runPurge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("accel purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, purgeUsage)
		fs.PrintDefaults()
	}
	tokenEnv := fs.String("token-env", admin.DefaultTokenEnv, "environment `variable` holding the admin token")
	admin := fs.String("admin", "http://"+admin.DefaultListen, "admin API `URL` (a bare host:port means http://)")
	config := fs.String("config", "", "accel's config `file`: the admin address and token are read from it")
	soft := fs.Bool("soft", false, "mark objects stale instead of removing them")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	kind := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return parseStatus(err)
	}
	targets := fs.Args()

	usageErr := func(msg string) int {
		fmt.Fprintln(stderr, "accel purge:", msg)
		fmt.Fprintln(stderr, "run 'accel purge -h' for usage")
		return 2
	}
	// forms lists the requests to make: one per URL or prefix, since the
	// API takes one of each per request, and one for all the tags.
	var path string
	var forms []url.Values
	switch kind {
	case "url", "prefix":
		path = kind
		for _, t := range targets {
			forms = append(forms, url.Values{kind: {t}})
		}
	case "tag", "tags":
		path = "tags"
		if len(targets) > 0 {
			forms = []url.Values{{"tags": targets}}
		}
	case "all":
		path = "all"
		if len(targets) > 0 {
			return usageErr("all takes no arguments")
		}
		forms = []url.Values{{}}
	default:
		return usageErr(fmt.Sprintf("unknown kind %q: want url, prefix, tag or all", kind))
	}
	if len(forms) == 0 {
		return usageErr(kind + " needs at least one argument")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	token := ""
	if *config != "" {
		cfg, err := policy.Load(*config)
		if err != nil {
			fmt.Fprintln(stderr, "accel purge:", err)
			return 2
		}
		ac, on := accel.AdminConfig(cfg)
		if !on && !set["admin"] {
			return usageErr(*config + ": the admin API is off (admin.listen)")
		}
		if !set["admin"] {
			*admin = adminURL(ac.Listen)
		}
		if !set["token-env"] {
			*tokenEnv = ac.TokenEnv
			token = strings.TrimSpace(ac.Token)
		}
	}
	if token == "" {
		token = strings.TrimSpace(os.Getenv(*tokenEnv))
	}
	if token == "" {
		return usageErr("$" + *tokenEnv + " is empty: set it to the admin API token")
	}
	base := strings.TrimRight(*admin, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}

	c := &http.Client{Timeout: *timeout}
	total := 0
	for _, form := range forms {
		if *soft {
			form.Set("soft", "true")
		}
		n, err := postPurge(c, base+"/purge/"+path, token, form)
		if err != nil {
			if errors.Is(err, errUnauthorized) {
				err = fmt.Errorf("%w: check $%s", err, *tokenEnv)
			}
			fmt.Fprintln(stderr, "accel purge:", err)
			if total > 0 {
				fmt.Fprintf(stderr, "accel purge: %d objects were purged before the error\n", total)
			}
			return 1
		}
		total += n
	}
	fmt.Fprintln(stdout, total)
	if total == 0 {
		fmt.Fprintln(stderr, "accel purge: nothing matched; cache keys carry the host as clients sent it, with its port unless it is the default (the access log's host field shows it)")
		return 3
	}
	return 0
}

// adminURL turns admin.listen into a URL to call: a wildcard address is
// called on loopback.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// parseStatus is the exit status for a flag error: 0 when help was
// asked for, 2 otherwise.
func parseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

var errUnauthorized = errors.New("the admin API refused the token (401)")

// postPurge sends one purge and returns the count the API answered.
func postPurge(c *http.Client, endpoint, token string, form url.Values) (int, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	var ans struct {
		Purged int    `json:"purged"`
		Error  string `json:"error"`
	}
	decErr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return 0, errUnauthorized
	case resp.StatusCode != http.StatusOK && ans.Error != "":
		return 0, fmt.Errorf("%s: %s", resp.Status, ans.Error)
	case resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("%s from %s", resp.Status, endpoint)
	case decErr != nil:
		return 0, fmt.Errorf("unreadable answer from %s: %w", endpoint, decErr)
	}
	return ans.Purged, nil
}
