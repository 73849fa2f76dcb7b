package pipeline

import (
	"iter"
	"math/bits"
)

// idMap maps int64 ids to values of V, like a map[int64]V, for the ids of
// PostgreSQL rows: serial keys, dense and mostly increasing. It keeps them
// in pages of idPageSize consecutive ids, found by index in a directory:
// loading a million items touches one page after another, and a lookup
// reads the directory (small, in the cache) and one slot, where a hash map
// of a million keys misses the cache on most probes (the side load spent
// half its sequential time in map inserts).
//
// Ids that are not dense go to a plain map instead (rest): a page is only
// allocated while the pages hold at least idMinFill ids each on average,
// and the directory only spans idDirSlack times the pages the ids need. So
// sparse ids (random, or a few far apart) cost about what a map costs.
//
// The zero value is empty and ready to use. Not safe for concurrent use.
type idMap[V any] struct {
	dir   []*idPage[V] // dir[i]: the page of ids (base+i)<<idPageBits ...
	base  int64        // page number of dir[0]
	pages int          // pages in dir
	n     int          // ids held, pages and rest
	free  []*idPage[V] // emptied pages, zeroed, for reuse

	rest     map[int64]int32 // ids outside the pages -> index in restV
	restV    []V
	restFree []int32 // unused indexes of restV
}

const (
	idPageBits = 8
	idPageSize = 1 << idPageBits
	idPageMask = idPageSize - 1
	// a new page needs pages+1 <= idFreePages + n/idMinFill: at most about
	// idPageSize/idMinFill slots per id once past the first pages
	idFreePages = 8
	idMinFill   = 64
	// the directory spans at most idDirSlack times the pages the ids
	// need, plus idDirFree entries (8 bytes each)
	idDirSlack = 4
	idDirFree  = 1024
)

type idPage[V any] struct {
	used [idPageSize / 64]uint64
	n    int
	v    [idPageSize]V
}

// page returns the page of id, or nil.
func (m *idMap[V]) page(id int64) *idPage[V] {
	if p := uint64(id>>idPageBits - m.base); p < uint64(len(m.dir)) {
		return m.dir[p]
	}
	return nil
}

// holds reports whether id, an id of the page, is set in it.
func (pg *idPage[V]) holds(id int64) bool {
	i := id & idPageMask
	return pg.used[i>>6]&(1<<(i&63)) != 0
}

// get returns the value of id and whether id is held.
func (m *idMap[V]) get(id int64) (V, bool) {
	if pg := m.page(id); pg != nil {
		if pg.holds(id) {
			return pg.v[id&idPageMask], true
		}
	}
	if len(m.rest) > 0 {
		if j, ok := m.rest[id]; ok {
			return m.restV[j], true
		}
	}
	var zero V
	return zero, false
}

// at returns the value of id, or the zero value.
func (m *idMap[V]) at(id int64) V {
	v, _ := m.get(id)
	return v
}

// has reports whether id is held.
func (m *idMap[V]) has(id int64) bool {
	_, ok := m.get(id)
	return ok
}

// slot returns a pointer to the value of id, adding id with the zero value
// when it is not held (added reports that). The pointer is valid until the
// next change of m.
func (m *idMap[V]) slot(id int64) (v *V, added bool) {
	pg := m.page(id)
	i := id & idPageMask
	if pg != nil && pg.holds(id) {
		return &pg.v[i], false
	}
	if len(m.rest) > 0 {
		if j, ok := m.rest[id]; ok {
			return &m.restV[j], false
		}
	}
	m.n++
	if pg == nil {
		pg = m.newPage(id >> idPageBits)
	}
	if pg != nil {
		pg.used[i>>6] |= 1 << (i & 63)
		pg.n++
		return &pg.v[i], true
	}
	var j int32
	if k := len(m.restFree); k > 0 {
		j, m.restFree = m.restFree[k-1], m.restFree[:k-1]
	} else {
		j = int32(len(m.restV))
		var zero V
		m.restV = append(m.restV, zero)
	}
	if m.rest == nil {
		m.rest = make(map[int64]int32)
	}
	m.rest[id] = j
	return &m.restV[j], true
}

// set sets the value of id.
func (m *idMap[V]) set(id int64, v V) {
	p, _ := m.slot(id)
	*p = v
}

// newPage adds the page of page number p to the directory when the ids are
// dense enough for it, else returns nil (the id goes to rest). m.n already
// counts the id being added.
func (m *idMap[V]) newPage(p int64) *idPage[V] {
	if m.pages+1 > idFreePages+m.n/idMinFill {
		return nil
	}
	lo, hi := p, p+1 // the directory's new span
	if len(m.dir) > 0 {
		lo, hi = min(lo, m.base), max(hi, m.base+int64(len(m.dir)))
	}
	if hi-lo > int64(idDirSlack*(m.n/idPageSize+1)+idDirFree) {
		return nil
	}
	if len(m.dir) == 0 {
		m.base = p
	}
	if lo < m.base { // grow down
		grown := make([]*idPage[V], int(hi-lo), int(hi-lo)+len(m.dir))
		copy(grown[m.base-lo:], m.dir)
		m.dir, m.base = grown, lo
	} else if n := int(hi - m.base); n > len(m.dir) {
		if n <= cap(m.dir) {
			m.dir = m.dir[:n]
		} else {
			m.dir = append(m.dir, make([]*idPage[V], n-len(m.dir))...)
		}
	}
	var pg *idPage[V]
	if k := len(m.free); k > 0 {
		pg, m.free = m.free[k-1], m.free[:k-1]
	} else {
		pg = new(idPage[V])
	}
	m.dir[p-m.base] = pg
	m.pages++
	return pg
}

// delete removes id.
func (m *idMap[V]) delete(id int64) {
	var zero V
	if pg := m.page(id); pg != nil && pg.holds(id) {
		i := id & idPageMask
		pg.used[i>>6] &^= 1 << (i & 63)
		pg.v[i] = zero
		pg.n--
		m.n--
		if pg.n == 0 { // empty: back to the free pages
			m.dir[id>>idPageBits-m.base] = nil
			m.pages--
			m.free = append(m.free, pg)
		}
		return
	}
	if j, ok := m.rest[id]; ok {
		delete(m.rest, id)
		m.restV[j] = zero
		m.restFree = append(m.restFree, j)
		m.n--
	}
}

// len is the number of ids held.
func (m *idMap[V]) len() int { return m.n }

// clear removes every id, keeping the pages for reuse.
func (m *idMap[V]) clear() {
	for i, pg := range m.dir {
		if pg != nil {
			*pg = idPage[V]{}
			m.free = append(m.free, pg)
			m.dir[i] = nil
		}
	}
	m.dir, m.pages, m.n = m.dir[:0], 0, 0
	clear(m.rest)
	clear(m.restV)
	m.restV, m.restFree = m.restV[:0], m.restFree[:0]
}

// all yields every id with a pointer to its value: the paged ids in
// increasing order, then the others in no particular order. The loop may
// delete the id it is at; it must add none.
func (m *idMap[V]) all() iter.Seq2[int64, *V] {
	return func(yield func(int64, *V) bool) {
		for pi, pg := range m.dir {
			if pg == nil {
				continue
			}
			first := (m.base + int64(pi)) << idPageBits
			for w := range pg.used {
				for word := pg.used[w]; word != 0; word &= word - 1 {
					i := w<<6 | bits.TrailingZeros64(word)
					if !yield(first+int64(i), &pg.v[i]) {
						return
					}
				}
			}
		}
		for id, j := range m.rest {
			if !yield(id, &m.restV[j]) {
				return
			}
		}
	}
}
