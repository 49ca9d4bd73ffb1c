// Package upstream owns the origin pools: which server of a pool answers a
// request, the keep-alive HTTP/1.1 connections to it, the bounded queue in
// front of them, retries and the health of each server.
//
// A Pool is built from a Config and used through Do. Do picks a server by
// smooth weighted round-robin (nginx's interleaving) or weighted
// least-connections, skipping servers that are ejected or already at
// MaxConnsPerServer. When no eligible server has a free connection the
// request waits in one bounded FIFO queue for at most QueueTimeout; a full
// queue or an expired wait is an error at once, never an unbounded pile.
//
// Each server has one fasthttp.HostClient, used as a connection pool only
// (dialing, idle reaping, pooled read and write buffers). The exchange on a
// connection is ours, in exchange.go: the request head is written as given
// with our framing, the response head is read with parser.ParseResponse and
// its body delimited as parser.ResponseFraming says (no body for HEAD, 1xx,
// 204 and 304 whatever their Content-Length; a connection that carried
// bytes past a response, or a body until close, is not reused), so origins
// face the same no-guessing rules as clients (duplicate
// Content-Length, Content-Length with Transfer-Encoding, obs-fold, bare CR,
// an unrequested 101 and endless 1xx are failures, never responses). A proxy
// also has to know what a client library hides: whether any byte of the
// request may have left (so a retry is safe), when the response head arrived
// (so the read timeout bounds silence, not the length of a 1 GiB body), and
// the caller's context (so a gone client frees its connection). Each
// exchange is a pooled object with the buffers it grew, so a miss allocates
// nothing here; the price is that a Response lives only until its Body is
// closed.
//
// A response body is read at the origin's pace into a spool (spool.go):
// memory up to BufferMemory, then an unlinked temp file up to BufferFile,
// as nginx's proxy buffering does. The connection goes back to the pool as
// soon as the origin sent the whole body, so a client that reads slowly, or
// not at all, holds buffers but no origin connection. Bytes are handed on as
// they arrive, so streamed responses are not held back.
//
// Failures of a server (refused, reset or timed-out connects, connections
// cut before a complete response, malformed heads) are counted;
// FailThreshold of them within FailWindow eject it for Cooldown, after which
// exactly one probe request is let through. A timeout on a sent request
// counts only when the server answered nothing else meanwhile, so one slow
// URL never ejects a live server. Ejection never makes an outage: the only
// server of a pool is never ejected, and while every server is ejected or
// down each request may go to any of them, the first success bringing its
// server back (nginx's behaviour when all servers of an upstream failed). Retries go to a
// different server and only when they cannot send a request twice: a
// Retryable request whose server failed before a complete response head, or
// any request whose connection was never made.
package upstream
