package parser

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// decode reads a whole chunked body from in, through a reader that hands
// over one byte per Read when slow is set, and returns the body, the error
// that ended it, and what is left on the connection after it.
func decode(in string, slow bool) (body, rest string, err error) {
	var src io.Reader = strings.NewReader(in)
	if slow {
		src = iotest.OneByteReader(src)
	}
	br := bufio.NewReaderSize(src, 16)
	b, err := io.ReadAll(NewChunkedReader(br))
	tail, _ := io.ReadAll(br)
	return string(b), string(tail), err
}

func TestChunkedReader(t *testing.T) {
	tests := []struct{ name, in, body string }{
		{"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
		{"hex digits of either case, leading zeros", "000a\r\n0123456789\r\n0B\r\nabcdefghijk\r\n0000\r\n\r\n", "0123456789abcdefghijk"},
		{"extensions, token and quoted values", "5;a=b;c;d=\"q \\\" x;\"\r\nhello\r\n0;last\r\n\r\n", "hello"},
		{"trailer fields read and dropped", "3\r\nabc\r\n0\r\nX-Sum: 123\r\nX-Empty:\r\n\r\n", "abc"},
		{"empty body", "0\r\n\r\n", ""},
	}
	for _, tt := range tests {
		for _, slow := range []bool{false, true} {
			body, rest, err := decode(tt.in+"NEXT", slow)
			if err != nil || body != tt.body || rest != "NEXT" {
				t.Errorf("%s (slow=%v): body %q, rest %q, err %v; want %q, \"NEXT\", nil", tt.name, slow, body, rest, err, tt.body)
			}
		}
	}
}

func TestChunkedReaderRejects(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"nothing", "", io.ErrUnexpectedEOF},
		{"truncated data", "5\r\nhel", io.ErrUnexpectedEOF},
		{"truncated size line", "5", io.ErrUnexpectedEOF},
		{"no last-chunk", "1\r\na\r\n", io.ErrUnexpectedEOF},
		{"truncated trailer", "0\r\nX: y\r\n", io.ErrUnexpectedEOF},
		{"data longer than its size", "5\r\nhelloXX\r\n0\r\n\r\n", ErrBadChunk},
		{"CR without LF after data", "5\r\nhello\r0\r\n\r\n", ErrBadChunk},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", ErrBadChunk},
		{"CR without LF after size", "5\rhello\r\n0\r\n\r\n", ErrBadChunk},
		{"space after size", "5 \r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"space before size", " 5\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"empty size", "\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"non-hex size", "g\r\n", ErrBadChunk},
		{"negative size", "-1\r\n", ErrBadChunk},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"17 digits", "00000000000000001\r\na\r\n0\r\n\r\n", ErrBadChunk},
		{"16 digits over int64", "8000000000000000\r\n", ErrChunkOverflow},
		{"17 digits over int64", "FFFFFFFFFFFFFFFFF\r\n", ErrChunkOverflow},
		{"largest size, body missing", "7fffffffffffffff\r\nabc", io.ErrUnexpectedEOF},
		{"empty extension", "5;\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"extension without name", "5;=x\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"extension with empty value", "5;a=\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"whitespace in extension", "5;a b\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"whitespace around extension", "5 ;a\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"junk after quoted value", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"control byte in quoted value", "5;a=\"x\x00\"\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"unterminated quoted value", "5;a=\"x\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"extensions over 4 KiB", "5;a=" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"trailer space before colon", "0\r\nX : y\r\n\r\n", ErrSpaceColon},
		{"trailer obs-fold", "0\r\nX: y\r\n z\r\n\r\n", ErrObsFold},
		{"trailer NUL", "0\r\nX: a\x00\r\n\r\n", ErrCtl},
		{"trailer bare LF", "0\r\nX: y\n\r\n", ErrBareLF},
		{"trailer end bare LF", "0\r\n\n", ErrBareLF},
		{"trailer bare CR", "0\r\nX: y\rz\r\n\r\n", ErrBareCR},
		{"trailer bad name", "0\r\nX(y): z\r\n\r\n", ErrBadFieldName},
		{"trailer over 64 KiB", "0\r\n" + strings.Repeat("X: "+strings.Repeat("v", 1021)+"\r\n", 65) + "\r\n", ErrTrailerTooLarge},
	}
	for _, tt := range tests {
		for _, slow := range []bool{false, true} {
			_, _, err := decode(tt.in, slow)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s (slow=%v): err %v, want %v", tt.name, slow, err, tt.want)
			}
		}
	}
}

func TestChunkedReaderStickyEnd(t *testing.T) {
	for _, in := range []string{"1\r\na\r\n0\r\n\r\n", "1\r\na\r\nz"} {
		cr := NewChunkedReader(bufio.NewReader(strings.NewReader(in)))
		first, err := io.ReadAll(cr)
		if string(first) != "a" {
			t.Fatalf("%q: read %q, %v", in, first, err)
		}
		want := err
		if want == nil {
			want = io.EOF
		}
		for range 3 {
			if n, err := cr.Read(make([]byte, 8)); n != 0 || err != want {
				t.Errorf("%q: Read after the end = %d, %v; want 0, %v", in, n, err, want)
			}
		}
	}
}

// TestChunkedReaderStreams checks that data is passed on as it arrives: the
// writer sends 10 bytes of a 4 KiB chunk and nothing more, so a reader that
// waited for the whole chunk would never return.
func TestChunkedReaderStreams(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		pw.Write([]byte("1000\r\n0123456789"))
	}()
	cr := NewChunkedReader(bufio.NewReader(pr))
	var got []byte
	buf := make([]byte, 64)
	for len(got) < 10 {
		n, err := cr.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "0123456789" {
		t.Errorf("read %q", got)
	}
}

func TestChunkedWriter(t *testing.T) {
	var out bytes.Buffer
	cw := NewChunkedWriter(&out)
	for _, s := range []string{"hello", "", " world", strings.Repeat("x", 300)} {
		if n, err := cw.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	want := "5\r\nhello\r\n6\r\n world\r\n12c\r\n" + strings.Repeat("x", 300) + "\r\n0\r\n\r\n"
	if out.String() != want {
		t.Errorf("wrote %q\nwant  %q", out.String(), want)
	}
	if _, err := cw.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}
	body, rest, err := decode(out.String(), true)
	if err != nil || body != "hello world"+strings.Repeat("x", 300) || rest != "" {
		t.Errorf("round trip: %q, rest %q, %v", body, rest, err)
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, errors.New("broken pipe")
	}
	w.after--
	return len(p), nil
}

func TestChunkedWriterErrors(t *testing.T) {
	for after := range 3 {
		cw := NewChunkedWriter(&failWriter{after: after})
		if _, err := cw.Write([]byte("abc")); err == nil {
			t.Errorf("failing write %d: no error", after)
		}
	}
	if err := NewChunkedWriter(&failWriter{}).Close(); err == nil {
		t.Error("failing Close: no error")
	}
}
