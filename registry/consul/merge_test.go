package consul

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// TestMergeSorted: merging per-node sorted lists gives what sorting them
// all together gives.
func TestMergeSorted(t *testing.T) {
	in := func(tenant, id string) registry.Instance {
		return registry.Instance{ID: id, Tenant: tenant, Addr: "127.0.0.1:1"}
	}
	random := func(n, lists int) [][]registry.Instance {
		out := make([][]registry.Instance, lists)
		for i := range n {
			k := rand.N(lists)
			out[k] = append(out[k], in(string(rune('a'+rand.N(26))), string(rune('a'+i%26))+string(rune('a'+i/26%26))))
		}
		for _, l := range out {
			slices.SortFunc(l, compareInstances)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		lists [][]registry.Instance
	}{
		{"none", nil},
		{"empty lists", [][]registry.Instance{{}, {}}},
		{"one list", [][]registry.Instance{{in("a", "1"), in("b", "1")}}},
		{"interleaved", [][]registry.Instance{{in("a", "1"), in("c", "1")}, {in("b", "1"), in("d", "1")}, {in("a", "2")}}},
		{"random, 11 lists", random(500, 11)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []registry.Instance
			n := 0
			for _, l := range tc.lists {
				want = append(want, l...)
				n += len(l)
			}
			slices.SortStableFunc(want, compareInstances)
			got := mergeSorted(tc.lists, n)
			if !slices.Equal(got, want) {
				t.Errorf("mergeSorted = %v, want %v", got, want)
			}
		})
	}
}
