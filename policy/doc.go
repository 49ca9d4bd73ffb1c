// Package policy owns what the operator decides and what RFC 9111 decides
// for them: the config file's schema and its validation, route matching,
// Cache-Control parsing, and the cacheability and freshness rules.
//
// A Config is decoded strictly (an unknown key is an error) and validated
// as a whole before anything uses it; every error names the file, line and
// YAML path of what is wrong, so a reload with a bad file can be refused
// while the old config keeps serving.
package policy
