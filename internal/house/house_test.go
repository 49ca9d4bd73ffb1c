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
	"github.com/accel-proxy/accel/parser":          0,
	"github.com/accel-proxy/accel/policy":          1,
	"github.com/accel-proxy/accel/cache":           2,
	"github.com/accel-proxy/accel/upstream":        2,
	"github.com/accel-proxy/accel/h1":              2,
	"github.com/accel-proxy/accel/h2":              2,
	"github.com/accel-proxy/accel/tlsstore":        2,
	"github.com/accel-proxy/accel/fleet":           2,
	"github.com/accel-proxy/accel/admin":           2,
	"github.com/accel-proxy/accel/accesslog":       2,
	"github.com/accel-proxy/accel/accel":           3,
	"github.com/accel-proxy/accel/cmd/accel":       4,
	"github.com/accel-proxy/accel/cmd/demo-origin": 4,
	"github.com/accel-proxy/accel/internal/house":  4,
	// bench/'s programs (the benchmark origin, clients and floor) import
	// nothing of ours but reqhead, the head reader of the origin and the
	// floor: they measure accel from outside, as they measure its peers.
	"github.com/accel-proxy/accel/bench/origin":           4,
	"github.com/accel-proxy/accel/bench/client":           4,
	"github.com/accel-proxy/accel/bench/floor":            4,
	"github.com/accel-proxy/accel/bench/internal/reqhead": 0,
	// testproc starts real servers for tests; anything may use it.
	"github.com/accel-proxy/accel/internal/testproc": 1,
	// rendezvous hashing, shared by tlsstore and accel.
	"github.com/accel-proxy/accel/internal/rendezvous": 0,
	// diskfs: the bounded pebble open and the room checks of the stores.
	"github.com/accel-proxy/accel/internal/diskfs": 1,
	// cfgerr carries a refused config value's place from the package that
	// owns its rules to accel's wiring.
	"github.com/accel-proxy/accel/internal/cfgerr": 0,
	// testfs mounts small filesystems for tests; anything may use it.
	"github.com/accel-proxy/accel/internal/testfs": 1,
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/accel-proxy/accel/...").Output()
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
			if !strings.HasPrefix(imp, "github.com/accel-proxy/accel/") {
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
	out, err := exec.Command("go", "vet", "github.com/accel-proxy/accel/...").CombinedOutput()
	if err != nil {
		t.Errorf("go vet:\n%s", out)
	}
}
