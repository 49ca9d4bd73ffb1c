package admin

import (
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
				topAdd(&tk, k)
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
	if len(tk.slots) != size || len(tk.heap) != size || len(tk.at) != size {
		t.Errorf("keeps %d entries, %d in the heap, %d places; want %d", len(tk.slots), len(tk.heap), len(tk.at), size)
	}
	for i, s := range tk.heap {
		e := tk.slots[s]
		if tk.at[e.key] != s || e.pos != int32(i) {
			t.Errorf("%s in slot %d at %d, mapped to slot %d, placed at %d", e.key, s, i, tk.at[e.key], e.pos)
		}
		if i > 0 && tk.count((i-1)/2) > e.n {
			t.Errorf("%s at %d counted %d, below its parent's %d", e.key, i, e.n, tk.count((i-1)/2))
		}
	}
	if a := testing.AllocsPerRun(100, func() { topAdd(&tk, []byte("/hot/a")) }); a != 0 {
		t.Errorf("counting a known key allocates %.1f times", a)
	}
}
