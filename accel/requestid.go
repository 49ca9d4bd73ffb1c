package accel

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

// requestIDs makes request ids: a random per-process prefix and a
// counter, unique across restarts and instances without a random read
// per request.
var requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	n      atomic.Uint64
}

func init() {
	var p [8]byte
	rand.Read(p[:])
	hex.Encode(requestIDs.prefix[:], p[:])
}

func appendRequestID(b []byte) []byte {
	b = append(b, requestIDs.prefix[:]...)
	n := requestIDs.n.Add(1)
	var c [16]byte
	for i := 15; i >= 0; i-- {
		c[i] = "0123456789abcdef"[n&15]
		n >>= 4
	}
	return append(b, c[:]...)
}

// usableRequestID reports whether a client's X-Request-Id may be passed
// on: 1 to 128 visible ASCII characters, so it cannot break a log line or
// a header.
func usableRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if c <= 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// requestID returns the request's id: the client's X-Request-Id when
// usable, else a new one, made once per request.
func (ex *exchange) requestID() []byte {
	if ex.reqID == nil {
		if v := ex.req.Fields.Get("X-Request-Id"); usableRequestID(v) {
			ex.reqID = v
		} else {
			ex.reqID = appendRequestID(ex.idBuf[:0])
		}
	}
	return ex.reqID
}
