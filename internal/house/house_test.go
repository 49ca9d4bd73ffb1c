package house

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// rank orders accel's packages: a package may import only packages of a
// lower rank (DESIGN.md: cmd → accel → {h1, h2, cache, upstream, policy,
// parser}; nothing imports accel but cmd; parser imports nothing of ours).
// h1 and h2 are the two fronts: each imports parser only.
var rank = map[string]int{
	"accel/parser":          0,
	"accel/policy":          1,
	"accel/cache":           2,
	"accel/upstream":        2,
	"accel/h1":              2,
	"accel/h2":              2,
	"accel/tlsstore":        2,
	"accel/fleet":           2,
	"accel/admin":           2,
	"accel/accel":           3,
	"accel/cmd/accel":       4,
	"accel/cmd/demo-origin": 4,
	"accel/internal/house":  4,
	// bench/'s programs (the benchmark origin and clients) import nothing
	// of ours: they measure accel from outside, as they measure its peers.
	"accel/bench/origin": 4,
	"accel/bench/client": 4,
	// testproc starts real servers for tests; anything may use it.
	"accel/internal/testproc": 1,
	// rendezvous hashing, shared by tlsstore and accel.
	"accel/internal/rendezvous": 0,
	// testfs mounts small filesystems for tests; anything may use it.
	"accel/internal/testfs": 1,
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "accel/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		r, ok := rank[p.ImportPath]
		if !ok {
			t.Errorf("package %s has no place in the layout: add it to rank with the reason in DESIGN.md", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, "accel/") {
				continue
			}
			if ri, ok := rank[imp]; ok && ri >= r {
				t.Errorf("%s imports %s: a package imports only lower ones", p.ImportPath, imp)
			}
		}
	}
}

func TestGofmt(t *testing.T) {
	out, err := exec.Command("gofmt", "-l", "../..").CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("gofmt would change:\n%s", out)
	}
}

func TestVet(t *testing.T) {
	if testing.Short() {
		t.Skip("go vet runs in the full suite")
	}
	out, err := exec.Command("go", "vet", "accel/...").CombinedOutput()
	if err != nil {
		t.Errorf("go vet:\n%s", out)
	}
}
