package parser

import "testing"

func TestBodyAllowed(t *testing.T) {
	for status, want := range map[int]bool{100: false, 103: false, 199: false, 200: true, 204: false, 206: true, 301: true, 304: false, 404: true, 500: true} {
		if got := BodyAllowed(status); got != want {
			t.Errorf("BodyAllowed(%d) = %v, want %v", status, got, want)
		}
	}
}

// TestResponseFraming: heads as an origin sends them, parsed by
// ParseResponse, framed for the request that asked.
func TestResponseFraming(t *testing.T) {
	for _, tc := range []struct {
		method, head string
		want         Framing
	}{
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", LengthBody},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NoBody},
		{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ChunkedBody},
		{"GET", "HTTP/1.1 200 OK\r\n\r\n", CloseBody},
		{"GET", "HTTP/1.0 200 OK\r\n\r\n", CloseBody},
		// The length of the representation, not of this message.
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", NoBody},
		{"HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", NoBody},
		{"HEAD", "HTTP/1.1 200 OK\r\n\r\n", NoBody},
		{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", NoBody},
		{"GET", "HTTP/1.1 304 Not Modified\r\n\r\n", NoBody},
		{"GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", NoBody},
		{"GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", NoBody},
		{"POST", "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n", LengthBody},
	} {
		var r Response
		if _, err := ParseResponse([]byte(tc.head), &r, Limits{}); err != nil {
			t.Fatalf("%q: %v", tc.head, err)
		}
		if got := ResponseFraming([]byte(tc.method), &r); got != tc.want {
			t.Errorf("%s answered %q: framing %d, want %d", tc.method, tc.head, got, tc.want)
		}
	}
}

// TestStripHopByHop: the fields RFC 9110 §7.6.1 keeps to one connection
// go, in any case, and so do those Connection names; the rest stay in
// order.
func TestStripHopByHop(t *testing.T) {
	in := Fields{}.Add("connection", "close, X-Private").Add("Keep-Alive", "timeout=5").
		Add("Content-Type", "text/plain").Add("TE", "trailers").Add("x-private", "1").
		Add("Transfer-Encoding", "chunked").Add("Upgrade", "h2c").Add("Trailer", "X").
		Add("Proxy-Connection", "keep-alive").Add("Content-Length", "3").Add("X-Public", "2")
	got := StripHopByHop(in)
	want := []string{"Content-Type", "Content-Length", "X-Public"}
	if len(got) != len(want) {
		t.Fatalf("got %d fields, want %v", len(got), want)
	}
	for i, f := range got {
		if string(f.Name) != want[i] {
			t.Errorf("field %d = %s, want %s", i, f.Name, want[i])
		}
	}
	if len(in) != 11 {
		t.Error("the input was changed")
	}
}

// TestConnectionSpecific: the fields RFC 9113 §8.2.2 forbids in an HTTP/2
// request are the hop-by-hop ones, TE but for "trailers", and not Trailer.
func TestConnectionSpecific(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"connection", "close", true},
		{"proxy-connection", "keep-alive", true},
		{"keep-alive", "timeout=5", true},
		{"transfer-encoding", "chunked", true},
		{"upgrade", "h2c", true},
		{"te", "gzip", true},
		{"te", "trailers, gzip", true},
		{"te", "trailers", false},
		{"trailer", "x-checksum", false},
		{"content-length", "3", false},
		{"x-connection", "close", false},
	} {
		if got := ConnectionSpecific([]byte(tc.name), []byte(tc.value)); got != tc.want {
			t.Errorf("ConnectionSpecific(%s: %s) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}
