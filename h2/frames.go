package h2

import (
	"errors"
	"io"

	"golang.org/x/net/http2"
)

// readFrame reads one frame and handles it. HEADERS and CONTINUATION are
// read by the loop itself (the Framer would allocate a frame for each);
// the rest go through the Framer, whose errors carry their RFC 9113 codes.
func (c *conn) readFrame() error {
	fh, err := c.fr.ReadFrameHeader()
	if err != nil {
		return c.frameError(err)
	}
	if !c.sawSettings && fh.Type != http2.FrameSettings {
		// RFC 9113 §3.4: the preface ends with the client's SETTINGS.
		return connError{http2.ErrCodeProtocol, "no_settings"}
	}
	switch fh.Type {
	case http2.FrameHeaders, http2.FrameContinuation:
		if cap(c.hbuf) < int(fh.Length) {
			c.hbuf = make([]byte, fh.Length)
		}
		p := c.hbuf[:fh.Length]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		if fh.Type == http2.FrameHeaders {
			return c.onHeaders(fh, p)
		}
		return c.onContinuation(fh, p)
	}
	f, err := c.fr.ReadFrameForHeader(fh)
	if err != nil {
		return c.frameError(err)
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		return c.onPing(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.onRST(f)
	case *http2.PriorityFrame:
		// Parsed and ignored (RFC 9113 §5.3.2), but never about itself.
		if f.StreamDep == f.StreamID {
			return c.streamError(f.StreamID, http2.ErrCodeProtocol, "self_dependency")
		}
		return c.idleFrame()
	case *http2.GoAwayFrame:
		// The peer opens nothing more: finish what runs, then close.
		c.mu.Lock()
		c.goingAway = true
		c.mu.Unlock()
		return nil
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "push_promise"}
	}
	// Unknown frame types are ignored (RFC 9113 §5.5).
	return c.idleFrame()
}

// frameError turns what the Framer reports into a connection or stream
// error.
func (c *conn) frameError(err error) error {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.Is(err, http2.ErrFrameTooLarge):
		return connError{http2.ErrCodeFrameSize, "frame_too_large"}
	case errors.As(err, &se):
		return c.streamError(se.StreamID, se.Code, "bad_frame")
	case errors.As(err, &ce):
		return connError{http2.ErrCode(ce), "bad_frame"}
	}
	return err
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return c.idleFrame()
	}
	if err := f.ForeachSetting(http2.Setting.Valid); err != nil {
		return c.frameError(err)
	}
	c.sawSettings = true
	c.mu.Lock()
	var err error
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = int(s.Val)
		case http2.SettingInitialWindowSize:
			// Applied one by one: a frame may repeat the setting, and
			// each value replaces the last (RFC 9113 §6.9.2).
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					err = connError{http2.ErrCodeFlowControl, "window_overflow"}
				}
			}
		}
		return nil
	})
	if err == nil {
		c.out = appendFrameHeader(c.out, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
		c.queuedControl++
		c.pushAllLocked()
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.idleFrame()
}

func (c *conn) onPing(f *http2.PingFrame) error {
	if f.IsAck() && f.Data == drainPing {
		// Every stream the client opened before it saw the first
		// GOAWAY has arrived.
		c.finalGoAway(false)
	}
	if !f.IsAck() {
		c.mu.Lock()
		c.out = appendFrameHeader(c.out, 8, http2.FramePing, http2.FlagPingAck, 0)
		c.out = append(c.out, f.Data[:]...)
		c.queuedControl++
		c.mu.Unlock()
	}
	return c.idleFrame()
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	c.mu.Lock()
	if f.StreamID == 0 {
		c.outflow += inc
		if c.outflow > maxWindow {
			c.mu.Unlock()
			return connError{http2.ErrCodeFlowControl, "window_overflow"}
		}
		c.pushAllLocked()
	} else if f.StreamID > c.lastStreamID {
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, "idle_stream"}
	} else if st := c.streams[f.StreamID]; st != nil && !st.localClosed {
		st.sendWindow += inc
		if st.sendWindow > maxWindow {
			c.resetLocked(st, http2.ErrCodeFlowControl)
			c.mu.Unlock()
			c.cfg.Count("window_overflow")
			return c.noteReset("window_overflow")
		}
		c.pushLocked(st)
	}
	c.mu.Unlock()
	// A window opened by less than 1 KiB moves too little data to be
	// worth a frame: the 1-byte dribble counts against the budget.
	if inc < 1024 {
		return c.idleFrame()
	}
	return nil
}

func (c *conn) onRST(f *http2.RSTStreamFrame) error {
	if f.StreamID > c.lastStreamID {
		return connError{http2.ErrCodeProtocol, "idle_stream"}
	}
	c.mu.Lock()
	st := c.streams[f.StreamID]
	live := st != nil && !st.closed
	if live {
		st.reset = true
		c.closeLocked(st, errStreamReset)
	}
	c.mu.Unlock()
	if !live {
		return c.idleFrame()
	}
	// A client reset of a stream we still work on: the rapid reset of
	// CVE-2023-44487 is many of them.
	return c.noteReset("rapid_reset")
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	data := f.Data()
	c.mu.Lock()
	c.inflow -= n
	if c.inflow < 0 {
		c.mu.Unlock()
		return connError{http2.ErrCodeFlowControl, "flow_control"}
	}
	st := c.streams[id]
	if st == nil || st.remoteClosed {
		// Whatever the peer sent counts against the connection window:
		// give it back.
		c.giveBackLocked(nil, n)
		c.mu.Unlock()
		switch {
		case id > c.lastStreamID && id > c.ignoredMax:
			return connError{http2.ErrCodeProtocol, "idle_stream"}
		case id > c.lastStreamID:
			// A stream opened after our GOAWAY, ignored.
		default:
			return c.streamError(id, http2.ErrCodeStreamClosed, "stream_closed")
		}
		return c.idleFrame()
	}
	st.inflow -= n
	if st.inflow < 0 {
		c.giveBackLocked(nil, n)
		c.resetLocked(st, http2.ErrCodeFlowControl)
		c.mu.Unlock()
		c.cfg.Count("flow_control")
		return c.noteReset("flow_control")
	}
	st.recvLen += int64(len(data))
	end := f.StreamEnded()
	if st.declLen >= 0 && (st.recvLen > st.declLen || end && st.recvLen != st.declLen) {
		// The body disagrees with its content-length (RFC 9113 §8.1.1).
		c.giveBackLocked(nil, n)
		c.resetLocked(st, http2.ErrCodeProtocol)
		c.mu.Unlock()
		c.cfg.Count("content_length")
		return c.noteReset("content_length")
	}
	// Padding is given back at once; data when the body reader took it.
	if pad := n - int64(len(data)); pad > 0 {
		c.giveBackLocked(st, pad)
	}
	if st.body != nil {
		st.body.put(data)
	} else {
		c.giveBackLocked(st, int64(len(data)))
	}
	if end {
		c.endRemoteLocked(st)
	}
	c.mu.Unlock()
	if len(data) < 1024 && !end {
		return c.idleFrame()
	}
	return nil
}

// giveBackLocked returns n received bytes to the peer's windows, for the
// connection and, when st is set, the stream; WINDOW_UPDATEs go out in
// batches of half a window.
func (c *conn) giveBackLocked(st *stream, n int64) {
	c.unacked += n
	if c.unacked >= connWindow/2 {
		c.out = appendWindowUpdate(c.out, 0, c.unacked)
		c.inflow += c.unacked
		c.unacked = 0
	}
	if st == nil || st.remoteClosed {
		return
	}
	st.unacked += n
	if st.unacked >= streamWindow/2 {
		c.out = appendWindowUpdate(c.out, st.id, st.unacked)
		st.inflow += st.unacked
		st.unacked = 0
	}
}

// streamError resets stream id for something the peer did. Resetting a
// stream still at work counts against MaxResets: a peer that makes us
// reset streams whose origin fetch already started is the MadeYouReset
// attack (CVE-2025-8671); other resets count as frames without a response.
func (c *conn) streamError(id uint32, code http2.ErrCode, reason string) error {
	c.cfg.Count(reason)
	c.mu.Lock()
	st := c.streams[id]
	live := st != nil && !st.closed
	if live {
		c.resetLocked(st, code)
	} else {
		c.out = appendRST(c.out, id, code)
		c.queuedControl++
	}
	c.mu.Unlock()
	if live {
		return c.noteReset("made_you_reset")
	}
	return c.idleFrame()
}
