package accesslog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogFileRotation: past max size the file moves to .1, .1 to .2, and
// no more than keep old files stay.
func TestLogFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := OpenFile(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 10 {
		fmt.Fprintf(f, "line %02d %s\n", i, strings.Repeat("x", 31)) // 40 bytes
	}
	// 10 lines of 40 bytes, two per file: 08-09 in the file, 06-07 in .1,
	// 04-05 in .2, nothing older kept.
	for name, first := range map[string]string{"": "line 08", ".1": "line 06", ".2": "line 04"} {
		data, err := os.ReadFile(path + name)
		if err != nil || !strings.HasPrefix(string(data), first) || len(data) != 80 {
			t.Errorf("%s: %q, %v; want two lines from %q", path+name, data, err, first)
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("more than keep=2 old files")
	}
}
