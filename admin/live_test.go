package admin

import (
	"hash/maphash"
	"strconv"
	"testing"
)

// TestTopKFindsHeavyKeys: Space-Saving's guarantee holds under a stream
// where nearly every key is new (the store path: every request a new
// path): each key counted more than N/size times is listed, in order,
// with a count that is at least its true one and at most N/size above.
func TestTopKFindsHeavyKeys(t *testing.T) {
	const size = 32
	tk := newTopK(size)
	hot := map[string]uint64{"/hot/a": 12000, "/hot/b": 6000, "/hot/c": 4000}
	n := uint64(0)
	for i := 0; i < 60_000; i++ {
		topAdd(&tk, []byte("/new/"+strconv.Itoa(i)))
		n++
		for k, c := range hot {
			if uint64(i)%(60_000/c) == 0 {
				topAdd(&tk, []byte(k))
				n++
			}
		}
	}
	top := tk.top(3)
	want := []string{"/hot/a", "/hot/b", "/hot/c"}
	for i, e := range top {
		if e.Key != want[i] || e.Count < hot[e.Key] || e.Count > hot[e.Key]+n/size {
			t.Errorf("top %d: %s counted %d, want %s counted %d to %d", i, e.Key, e.Count, want[i], hot[want[i]], hot[want[i]]+n/size)
		}
	}
	checkTopK(t, &tk, size)
	if a := testing.AllocsPerRun(100, func() { topAdd(&tk, []byte("/hot/a")) }); a != 0 {
		t.Errorf("counting a known key allocates %.1f times", a)
	}
}

// checkTopK checks that tk keeps size entries, each found from its key in
// the slot the heap names, and no other, in heap order.
func checkTopK(t *testing.T, tk *topK, size int) {
	t.Helper()
	used := 0
	for _, p := range tk.places {
		if p != 0 {
			used++
		}
	}
	if len(tk.slots) != size || len(tk.heap) != size || used != size {
		t.Errorf("keeps %d entries, %d in the heap, %d places; want %d", len(tk.slots), len(tk.heap), used, size)
	}
	for i, s := range tk.heap {
		e := tk.slots[s]
		p, found := tk.find([]byte(e.key), e.hash)
		if !found || tk.places[p] != s+1 || e.pos != int32(i) {
			t.Errorf("%s in slot %d at %d, found %v at a place naming slot %d, placed at %d", e.key, s, i, found, tk.places[p]-1, e.pos)
		}
		if i > 0 && tk.count((i-1)/2) > e.n {
			t.Errorf("%s at %d counted %d, below its parent's %d", e.key, i, e.n, tk.count((i-1)/2))
		}
	}
}

// TestTopKTableAfterChurn: with a table as small as it gets (size 3, four
// places), a stream of new keys among a few returning ones replaces entries
// whose probe runs wrap around the table's end and cross each other; after
// every call each kept key is still found, and a replaced one is not.
func TestTopKTableAfterChurn(t *testing.T) {
	tk := newTopK(3)
	for i := 0; i < 5000; i++ {
		k := "/k/" + strconv.Itoa(i)
		if i%3 == 0 {
			k = "/back/" + strconv.Itoa(i%7)
		}
		topAdd(&tk, []byte(k))
		if _, found := tk.find([]byte(k), maphash.Bytes(tk.seed, []byte(k))); !found {
			t.Fatalf("call %d: %s just counted is not found", i, k)
		}
		checkTopK(t, &tk, min(i+1, 3))
		if t.Failed() {
			t.Fatalf("after call %d (%s)", i, k)
		}
	}
}
