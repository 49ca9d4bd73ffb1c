package parser

// Limits bounds what ParseRequest and ParseResponse accept from a peer. The
// zero value is usable: a field that is zero (or negative) takes its default.
// The bounds are what keep a slow or hostile peer from making accel buffer
// without end, so raise them only for a known client population.
type Limits struct {
	// MaxHeadBytes bounds the whole head: leading empty lines, start line,
	// field lines and the blank line. Default 64 KiB. A head that has not
	// ended once this many bytes arrived is ErrHeadTooLarge (431).
	MaxHeadBytes int
	// MaxTargetBytes bounds the request-target. Default 8 KiB. A longer
	// target is ErrTargetTooLong (414), reported as soon as it exceeds the
	// bound, before the rest of the head arrives.
	MaxTargetBytes int
	// MaxFields bounds the number of field lines. Default 100. One more is
	// ErrTooManyFields (431).
	MaxFields int
}

const (
	defaultMaxHeadBytes   = 64 << 10
	defaultMaxTargetBytes = 8 << 10
	defaultMaxFields      = 100
)

// WithDefaults returns l with every zero field set to its default: the
// defaults live here, with the parser that enforces them.
func (l Limits) WithDefaults() Limits {
	if l.MaxHeadBytes <= 0 {
		l.MaxHeadBytes = defaultMaxHeadBytes
	}
	if l.MaxTargetBytes <= 0 {
		l.MaxTargetBytes = defaultMaxTargetBytes
	}
	if l.MaxFields <= 0 {
		l.MaxFields = defaultMaxFields
	}
	return l
}
