package pipeline

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkIDMap compares m with want: length, every lookup, and iteration.
func checkIDMap(t *testing.T, m *idMap[int64], want map[int64]int64, probes []int64) {
	t.Helper()
	if m.len() != len(want) {
		t.Fatalf("len %d, want %d", m.len(), len(want))
	}
	for id, v := range want {
		if got, ok := m.get(id); !ok || got != v {
			t.Fatalf("get(%d) = %d, %v; want %d, true", id, got, ok, v)
		}
	}
	for _, id := range probes {
		got, ok := m.get(id)
		if wv, wok := want[id]; ok != wok || got != wv {
			t.Fatalf("get(%d) = %d, %v; want %d, %v", id, got, ok, wv, wok)
		}
	}
	seen := map[int64]int64{}
	var paged []int64
	for id, v := range m.all() {
		if _, dup := seen[id]; dup {
			t.Fatalf("all yields %d twice", id)
		}
		seen[id] = *v
		if pg := m.page(id); pg != nil && pg.holds(id) {
			paged = append(paged, id)
		}
	}
	if !maps.Equal(seen, want) {
		t.Fatalf("all yields %d ids, want %d (or other values)", len(seen), len(want))
	}
	if !slices.IsSorted(paged) {
		t.Fatal("all does not yield the paged ids in increasing order")
	}
}

// TestIDMap runs random operations on an idMap and a map side by side, for
// dense, sparse and mixed ids (negative and extreme ones included).
func TestIDMap(t *testing.T) {
	gens := map[string]func(r *rand.Rand, i int) int64{
		"dense":    func(r *rand.Rand, i int) int64 { return int64(i/2) + r.Int64N(50) },
		"shuffled": func(r *rand.Rand, _ int) int64 { return 1_000_000 + r.Int64N(5000) },
		"sparse":   func(r *rand.Rand, _ int) int64 { return r.Int64() - math.MaxInt64/2 },
		"mixed": func(r *rand.Rand, i int) int64 {
			switch r.IntN(4) {
			case 0:
				return r.Int64()
			case 1:
				return -int64(i % 700)
			case 2:
				return []int64{math.MinInt64, math.MaxInt64, 0, -1}[r.IntN(4)]
			}
			return int64(i)
		},
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			var m idMap[int64]
			want := map[int64]int64{}
			var probes []int64
			for i := range 20000 {
				id := gen(r, i)
				probes = append(probes, id, id+1, id-idPageSize)
				switch op := r.IntN(10); {
				case op < 6:
					v := r.Int64()
					m.set(id, v)
					want[id] = v
				case op < 8:
					p, added := m.slot(id)
					_, had := want[id]
					if added == had {
						t.Fatalf("slot(%d) added=%v, but held before: %v", id, added, had)
					}
					*p += 7
					want[id] += 7
				default:
					m.delete(id)
					delete(want, id)
				}
				if i%2500 == 0 {
					checkIDMap(t, &m, want, probes[max(0, len(probes)-300):])
				}
			}
			checkIDMap(t, &m, want, probes)
			// deleting while iterating (every odd value)
			for id, v := range m.all() {
				if *v%2 != 0 {
					m.delete(id)
					delete(want, id)
				}
			}
			checkIDMap(t, &m, want, probes)
			m.clear()
			checkIDMap(t, &m, map[int64]int64{}, probes)
			for i := range 3000 {
				id := gen(r, i)
				m.set(id, int64(i))
				want[id] = int64(i)
			}
			clear(want)
			for id, v := range m.all() {
				want[id] = *v
			}
			checkIDMap(t, &m, want, probes)
		})
	}
}

// TestIDMapLayout checks where ids go: dense ids into pages (no map), ids
// far apart into the map without pages for each.
func TestIDMapLayout(t *testing.T) {
	var dense idMap[int32]
	for id := int64(5_000_000); id < 5_100_000; id++ { // a sequence started high
		dense.set(id, int32(id))
	}
	for id := int64(4_999_000); id < 5_000_000; id++ { // and a few below it
		dense.set(id, int32(id))
	}
	if len(dense.rest) != 0 {
		t.Errorf("dense ids: %d in the map, want 0", len(dense.rest))
	}
	if want := 101_000/idPageSize + 2; dense.pages > want {
		t.Errorf("dense ids: %d pages, want at most %d", dense.pages, want)
	}

	var sparse idMap[int32]
	r := rand.New(rand.NewPCG(2, 3))
	for i := range 100_000 {
		sparse.set(r.Int64(), int32(i))
	}
	if sparse.pages > idFreePages+sparse.len()/idMinFill {
		t.Errorf("sparse ids: %d pages for %d ids", sparse.pages, sparse.len())
	}
	if len(sparse.rest) < 99_000 {
		t.Errorf("sparse ids: %d in the map, want nearly all", len(sparse.rest))
	}

	// emptied pages are reused, not reallocated
	var m idMap[int64]
	for id := range int64(10 * idPageSize) {
		m.set(id, id)
	}
	pg := m.page(3 * idPageSize)
	for id := int64(3 * idPageSize); id < 4*idPageSize; id++ {
		m.delete(id)
	}
	if m.page(3*idPageSize) != nil || len(m.free) != 1 || m.free[0] != pg {
		t.Fatal("an emptied page is not in the free list")
	}
	if *pg != (idPage[int64]{}) {
		t.Fatal("a freed page is not zeroed")
	}
	m.set(100*idPageSize, 1)
	if m.page(100*idPageSize) != pg {
		t.Error("a new page does not reuse the freed one")
	}
}
