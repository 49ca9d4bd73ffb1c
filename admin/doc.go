// Package admin owns accel's admin HTTP API and its metrics: purges by URL,
// prefix, tag or everything (hard or soft), GET /stats, GET /metrics in the
// Prometheus text format, POST /reload and GET /healthz.
//
// The API listens on an address of its own, loopback by default, apart from
// client traffic. Every endpoint but /healthz requires the configured bearer
// token, compared in constant time; a request without it gets 401 and
// changes nothing, and with no token configured every such request does.
// The package knows the cache only through the Purger interface and the
// rest of accel only through callbacks (Options.Reload, Options.Stats, the
// Metrics setters), so it imports nothing of accel's. Metrics live in a
// registry of their own; ObserveRequest and IncHandshake, called per
// request and per connection, find their series by index, not by hashing
// label values. docs/admin.md documents
// every endpoint with a curl example.
package admin
