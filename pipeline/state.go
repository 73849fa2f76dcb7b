package pipeline

import (
	"cmp"
	"slices"
	"sort"
)

// version is one state of a row, valid from the commit LSN that produced it.
type version[T any] struct {
	LSN     uint64
	Ts      Micros // commit time
	Deleted bool
	Row     T
}

// history keeps every version of every row of a dimension, in LSN order, so
// that a join can read the row "as of" any LSN. Versions are compact typed
// structs; one slice per key.
type history[T any] struct {
	m map[int64][]version[T]
}

func newHistory[T any]() *history[T] { return &history[T]{m: make(map[int64][]version[T])} }

// put records v for id. A version with the LSN of an existing one (a second
// change of the row in one transaction, or a redelivery) replaces it: the
// later change is the transaction's final state. Versions stay sorted by LSN
// even when an older event arrives late.
func (h *history[T]) put(id int64, v version[T]) {
	vs := h.m[id]
	n := len(vs)
	if n == 0 || vs[n-1].LSN < v.LSN {
		h.m[id] = append(vs, v)
		return
	}
	i := sort.Search(n, func(i int) bool { return vs[i].LSN >= v.LSN })
	if i < n && vs[i].LSN == v.LSN {
		vs[i] = v
		return
	}
	vs = append(vs, version[T]{})
	copy(vs[i+1:], vs[i:])
	vs[i] = v
	h.m[id] = vs
}

// asOf returns the version of id in force at lsn: the newest with LSN <= lsn.
func (h *history[T]) asOf(id int64, lsn uint64) (version[T], bool) {
	vs := h.m[id]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].LSN > lsn })
	if i == 0 {
		return version[T]{}, false
	}
	return vs[i-1], true
}

// before returns the newest version with LSN < lsn (the state an event at lsn
// starts from).
func (h *history[T]) before(id int64, lsn uint64) (version[T], bool) {
	if lsn == 0 {
		return version[T]{}, false
	}
	return h.asOf(id, lsn-1)
}

// asOfTime returns the newest version committed at or before ts.
func (h *history[T]) asOfTime(id int64, ts Micros) (version[T], bool) {
	vs := h.m[id]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Ts <= ts {
			return vs[i], true
		}
	}
	return version[T]{}, false
}

// first returns the oldest known version of id.
func (h *history[T]) first(id int64) (version[T], bool) {
	vs := h.m[id]
	if len(vs) == 0 {
		return version[T]{}, false
	}
	return vs[0], true
}

// lookup is the join rule: the version as of lsn (or, when the placement
// LSN is unknown, as of time ts); when the history holds nothing that old
// (the topic was compacted), the oldest version known. ok is false only when
// the row is not known at all.
func (h *history[T]) lookup(id int64, lsn uint64, ts Micros) (version[T], bool) {
	var v version[T]
	var ok bool
	if lsn > 0 {
		v, ok = h.asOf(id, lsn)
	} else {
		v, ok = h.asOfTime(id, ts)
	}
	if !ok {
		v, ok = h.first(id)
	}
	return v, ok
}

func (h *history[T]) len() int { return len(h.m) }

// items keeps every version of every order item, grouped by order, so that an
// order's fact can read its items as of the order event's LSN.
type items struct {
	byOrder idMap[[]version[Item]] // order id -> versions of its items, in arrival order
	order   idMap[int64]           // item id -> order id (deletes carry only the key)
	scratch []version[Item]        // asOf's result, reused
}

func newItems() *items { return &items{} }

// put records a version of an item.
func (s *items) put(v version[Item]) {
	s.order.set(v.Row.ID, v.Row.OrderID)
	p, _ := s.byOrder.slot(v.Row.OrderID)
	vs := *p
	for i := range vs {
		if vs[i].Row.ID == v.Row.ID && vs[i].LSN == v.LSN {
			vs[i] = v
			return
		}
	}
	// exactly one more slot: an order has a few item versions, kept for
	// its lifetime, and append's doubling would leave up to half unused
	nv := make([]version[Item], len(vs)+1)
	copy(nv, vs)
	nv[len(vs)] = v
	*p = nv
}

// latestBefore returns the newest version of item id with LSN < lsn (or the
// newest at all when lsn is 0).
func (s *items) latestBefore(id int64, lsn uint64) (version[Item], bool) {
	oid, ok := s.order.get(id)
	if !ok {
		return version[Item]{}, false
	}
	var best version[Item]
	found := false
	for _, v := range s.byOrder.at(oid) {
		if v.Row.ID == id && (lsn == 0 || v.LSN < lsn) && (!found || v.LSN >= best.LSN) {
			best, found = v, true
		}
	}
	return best, found
}

// asOfIn returns, for each item of an order (vs: its versions, byOrder's
// value) that exists at lsn, its newest version with LSN <= lsn, deleted
// items included (so their lines can be marked deleted), sorted by item id.
// The slice is valid until the next call (it is reused).
func (s *items) asOfIn(vs []version[Item], lsn uint64) []version[Item] {
	out := s.scratch[:0]
	for _, v := range vs {
		if v.LSN > lsn {
			continue
		}
		j := -1
		for k := range out {
			if out[k].Row.ID == v.Row.ID {
				j = k
				break
			}
		}
		switch {
		case j < 0:
			out = append(out, v)
		case v.LSN >= out[j].LSN:
			out[j] = v
		}
	}
	slices.SortFunc(out, func(a, b version[Item]) int { return cmp.Compare(a.Row.ID, b.Row.ID) })
	s.scratch = out[:0]
	return out
}

// maxLSN is the newest LSN among order oid's item versions.
func (s *items) maxLSN(oid int64) uint64 { return maxItemLSN(s.byOrder.at(oid)) }

// countAsOf is the number of order oid's item versions with LSN <= lsn.
func (s *items) countAsOf(oid int64, lsn uint64) int { return countItemsAsOf(s.byOrder.at(oid), lsn) }

// maxItemLSN is the newest LSN among vs, an order's item versions.
func maxItemLSN(vs []version[Item]) uint64 {
	var m uint64
	for _, v := range vs {
		m = max(m, v.LSN)
	}
	return m
}

// countItemsAsOf is the number of versions of vs with LSN <= lsn.
func countItemsAsOf(vs []version[Item], lsn uint64) int {
	n := 0
	for _, v := range vs {
		if v.LSN <= lsn {
			n++
		}
	}
	return n
}

// orderState is what the transformer keeps per order of the partitions it
// owns: the latest row and the LSNs the fact needs.
type orderState struct {
	Order
	LSN       uint64 // commit LSN of the last applied event
	Ts        Micros // its commit time
	PlacedLSN uint64 // commit LSN of the INSERT (0 when not seen: as-of by placed_at)
	CustVer   uint64 // LSN of the customer version the last fact used (0: none found)
	Deleted   bool
	dirty     bool // changed since its fact was last derived (deferred derivation)
	Partition int32
	derivedN  int // item versions the last fact was derived from (late-item repair)
}
