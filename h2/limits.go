package h2

import "golang.org/x/net/http2"

// abuse counts, per AbuseWindow, what a connection made the server do for
// nothing. Owned by the connection's goroutine.
//
// Where RFC 9113 leaves the policy open, the limits follow nginx and
// HAProxy: nginx ends a connection that opens streams faster than it can
// reset them and caps frames without a response; HAProxy counts protocol
// "glitches" per connection and closes it with ENHANCE_YOUR_CALM past a
// threshold. Here: more than MaxResets streams ending in a reset (the
// client's RST_STREAM on a stream still at work, our resets caused by the
// client's frames, streams refused over the limit, header lists over the
// limit), or more than MaxIdleFrames frames that produce no response, within
// AbuseWindow, and the connection gets GOAWAY ENHANCE_YOUR_CALM.
type abuse struct {
	start  int64 // window start, unix nanoseconds
	resets int
	idle   int
}

func (c *conn) rollWindow() {
	now := c.now.UnixNano()
	if now-c.abuse.start > int64(c.cfg.AbuseWindow) {
		c.abuse = abuse{start: now}
	}
}

// noteReset counts a stream that ended in a reset.
func (c *conn) noteReset(reason string) error {
	c.rollWindow()
	c.abuse.resets++
	if c.abuse.resets > c.cfg.MaxResets {
		c.cfg.Log.Warn("http2 connection cut: too many reset streams",
			"peer", c.info.Remote.String(), "limit", "max_resets", "max", c.cfg.MaxResets, "window", c.cfg.AbuseWindow, "last", reason)
		return connError{http2.ErrCodeEnhanceYourCalm, "too_many_resets"}
	}
	return nil
}

// idleFrame counts a frame that produces no response.
func (c *conn) idleFrame() error {
	c.rollWindow()
	c.abuse.idle++
	if c.abuse.idle > c.cfg.MaxIdleFrames {
		c.cfg.Log.Warn("http2 connection cut: too many frames without a response",
			"peer", c.info.Remote.String(), "limit", "max_idle_frames", "max", c.cfg.MaxIdleFrames, "window", c.cfg.AbuseWindow)
		return connError{http2.ErrCodeEnhanceYourCalm, "too_many_idle_frames"}
	}
	return nil
}

// refund gives back some of the idle-frame budget for a request: the
// acknowledgements and window updates that come with real traffic do not
// add up against a client that keeps asking for things.
func (c *conn) refund() {
	c.abuse.idle = max(0, c.abuse.idle-2)
}
