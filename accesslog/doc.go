// Package accesslog owns the access log: its Config (the log section's
// access keys, with their defaults and checks), the line formats (log
// records, nginx's combined, JSON, nginx-style templates), and the file it
// goes to, reopened on request and rotated by size.
//
// The pipeline fills a Record per request and hands it to Write, which
// formats it into a pooled buffer and writes it as one line, so that
// concurrent requests never interleave and a request costs no allocation
// for its line.
package accesslog
