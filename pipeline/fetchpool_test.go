package pipeline

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A pooled buffer always has room for what a snappy block decompresses to
// (its length prefix), and a buffer put back serves only requests it can
// hold.
func TestFetchPoolSizes(t *testing.T) {
	p := &fetchPool{}
	for _, n := range []int{0, 1, 1000, 1 << 16, 1<<16 + 1, 3 << 20} {
		block := s2.EncodeSnappy(nil, bytes.Repeat([]byte("orderflow "), n/10+1)[:n])
		if got := decompressedSize(block, kgo.CodecSnappy); got != n {
			t.Errorf("snappy block of %d bytes: size %d", n, got)
		}
		if b := p.GetDecompressBytes(block, kgo.CodecSnappy); cap(b) < n || len(b) != 0 {
			t.Errorf("snappy block of %d bytes: buffer len %d cap %d", n, len(b), cap(b))
		}
	}
	framed := append([]byte("\x82SNAPPY\x00"), make([]byte, 100)...)
	if got := decompressedSize(framed, kgo.CodecSnappy); got != 4*len(framed) {
		t.Errorf("xerial-framed: size %d, want the guess %d", got, 4*len(framed))
	}
	if got := decompressedSize(make([]byte, 50), kgo.CodecLz4); got != 200 {
		t.Errorf("lz4: size %d, want the guess 200", got)
	}
	// a 3,000-byte buffer is in the 2,048 class: it may serve 2,048 bytes,
	// never 3,500 (whose class, 4,096, it would be in if rounded up)
	for i := 0; i < 100; i++ {
		p.PutDecompressBytes(make([]byte, 0, 3000))
	}
	if b := p.GetDecompressBytes(s2.EncodeSnappy(nil, make([]byte, 3500)), kgo.CodecSnappy); cap(b) < 3500 {
		t.Errorf("3,500 bytes: a buffer of cap %d", cap(b))
	}
	for i := 0; i < 100; i++ {
		p.PutRecords(make([]kgo.Record, 0, 300))
	}
	if rs := p.GetRecords(400); cap(rs) < 400 || len(rs) != 0 {
		t.Errorf("400 records: len %d cap %d", len(rs), cap(rs))
	}
}
