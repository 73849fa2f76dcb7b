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
	bufs [poolClasses]sync.Pool // *[]byte, class k: cap >= 1<<k
	recs [poolClasses]sync.Pool // *[]kgo.Record, class k: cap >= 1<<k
}

const poolClasses = 32

// class is the smallest k with 1<<k >= n.
func class(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

// GetDecompressBytes implements kgo.PoolDecompressBytes.
func (p *fetchPool) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	k := class(decompressedSize(compressed, codec))
	if k >= poolClasses {
		return nil // the codec allocates
	}
	if b, ok := p.bufs[k].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<k)
}

// PutDecompressBytes implements kgo.PoolDecompressBytes.
func (p *fetchPool) PutDecompressBytes(b []byte) {
	if k := bits.Len(uint(cap(b))) - 1; k >= 0 && k < poolClasses {
		p.bufs[k].Put(&b)
	}
}

// GetRecords implements kgo.PoolRecords.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	k := class(n)
	if k < poolClasses {
		if rs, ok := p.recs[k].Get().(*[]kgo.Record); ok {
			return (*rs)[:0]
		}
	}
	return make([]kgo.Record, 0, 1<<min(k, poolClasses-1))
}

// PutRecords implements kgo.PoolRecords.
func (p *fetchPool) PutRecords(rs []kgo.Record) {
	if k := bits.Len(uint(cap(rs))) - 1; k >= 0 && k < poolClasses {
		p.recs[k].Put(&rs)
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
