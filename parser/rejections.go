package parser

// Rejections lists every rejection this package makes, so that metrics
// can export each reason from start, before the first one happens.
func Rejections() []*Error {
	return []*Error{
		ErrCLTE, ErrDupCL, ErrBadCL, ErrTENotChunked, ErrObsFold, ErrBareCR, ErrBareLF,
		ErrCtl, ErrSpaceColon, ErrBadMethod, ErrBadFieldName, ErrBadTarget, ErrBadVersion,
		ErrBadStatus, ErrNoHost, ErrDupHost, ErrBadChunk, ErrChunkOverflow, ErrHeadTooLarge,
		ErrTargetTooLong, ErrTooManyFields, ErrVersionUnsupp, ErrBadHost, ErrTEUnsupported,
		ErrExpectation, ErrBadTrailer, ErrTrailerTooLarge,
	}
}
