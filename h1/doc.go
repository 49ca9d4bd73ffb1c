// Package h1 is the HTTP/1 front: it owns the framing of HTTP/1.x client
// connections, reading request heads with the strict parser, request
// bodies by Content-Length or chunked, and writing responses.
//
// One goroutine serves a connection (Server.Serve) in a keep-alive loop.
// A request without a body is first offered to Handler.ServeFast on that
// goroutine: a cached hit is answered with no goroutine, context,
// deadline change or allocation. Anything else goes to Handler.Serve
// with the connection's context, reused from request to request, and a
// watch that cancels it when the client goes away, which starts reading
// only once the request has waited 50 ms (abort.go). One
// Writer per response alone decides whether the connection closes after
// it: a client's Connection: close, an HTTP/1.0 body without a length, a
// body cut short or left unread, a drain.
package h1
