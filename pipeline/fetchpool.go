package pipeline

import (
	"encoding/binary"
	"math/bits"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPool lends the Kafka clients (kgo.WithPools) the buffers fetched
// record batches are decompressed into and the Record slices they are
// decoded into, and takes them back once every record of a batch is
// recycled (kgo.Record.Recycle). Without it, a drain allocated a fresh
// buffer for every batch: more than half of the transformer's allocations
// during a backlog, each one bringing the next garbage collection (which
// rescans the join state) closer.
//
// A record may be recycled only when nothing references its Key or Value
// any more: the side reader recycles a chunk once it is applied (the state
// copies what it keeps); the group's records are held by the batch whose
// change_log rows reference their values, and recycled once it is written.
type fetchPool struct {
	bufs sizedPool[byte]
	recs sizedPool[kgo.Record]
}

// GetDecompressBytes implements kgo.PoolDecompressBytes (nil: the codec
// allocates).
func (p *fetchPool) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	return p.bufs.get(decompressedSize(compressed, codec))
}

// PutDecompressBytes implements kgo.PoolDecompressBytes.
func (p *fetchPool) PutDecompressBytes(b []byte) { p.bufs.put(b) }

// GetRecords implements kgo.PoolRecords.
func (p *fetchPool) GetRecords(n int) []kgo.Record { return p.recs.get(n) }

// PutRecords implements kgo.PoolRecords.
func (p *fetchPool) PutRecords(rs []kgo.Record) { p.recs.put(rs) }

// sizedPool pools slices by capacity class: class k holds slices whose
// capacity is at least 1<<k.
type sizedPool[T any] [poolClasses]sync.Pool

const poolClasses = 32

// get returns an empty slice with capacity at least n, or nil when n is
// beyond the classes.
func (p *sizedPool[T]) get(n int) []T {
	k := bits.Len(uint(max(n, 1) - 1)) // the smallest k with 1<<k >= n
	if k >= poolClasses {
		return nil
	}
	if s, ok := p[k].Get().(*[]T); ok {
		return (*s)[:0]
	}
	return make([]T, 0, 1<<k)
}

// put keeps s in the class its capacity fills.
func (p *sizedPool[T]) put(s []T) {
	if k := bits.Len(uint(cap(s))) - 1; k >= 0 && k < poolClasses {
		p[k].Put(&s)
	}
}

// decompressedSize is the size compressed decompresses to: exact for a
// snappy block (its length prefix), a guess otherwise (too small costs the
// codec one allocation of its own, too large only idle capacity).
func decompressedSize(compressed []byte, codec kgo.CompressionCodecType) int {
	if codec == kgo.CodecSnappy && !xerialFramed(compressed) {
		if n, w := binary.Uvarint(compressed); w > 0 && n <= 1<<30 {
			return int(n)
		}
	}
	return 4 * len(compressed)
}

// xerialFramed reports the framing Java clients wrap snappy blocks in.
func xerialFramed(b []byte) bool {
	return len(b) >= 8 && string(b[:8]) == "\x82SNAPPY\x00"
}

// recycle gives recs back to their pools (see fetchPool) and clears them.
func recycle(recs []*kgo.Record) {
	for i, r := range recs {
		if r != nil {
			r.Recycle()
		}
		recs[i] = nil
	}
}
