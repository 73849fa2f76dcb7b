package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// spool holds the changes of one streamed (still in-progress) PostgreSQL
// transaction in a temporary file until its Stream Commit or Stream Abort,
// so a transaction of any size costs a bounded amount of memory. Like
// PostgreSQL's own apply worker it remembers where each subtransaction's
// changes start, so a rolled-back savepoint truncates the file.
type spool struct {
	f       *os.File
	w       *bufio.Writer
	size    int64
	subxact map[uint32]int64 // subtransaction xid -> offset of its first message
	order   []uint32         // subtransactions in order of first appearance
	msgs    int
}

func newSpool(dir string, xid uint32) (*spool, error) {
	f, err := os.CreateTemp(dir, "orderflow-capture-xid"+strconv.FormatUint(uint64(xid), 10)+"-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create spool file for xid %d: %w", xid, err)
	}
	// The file is only ever reached through f; unlink it now so a crash
	// leaves nothing behind.
	_ = os.Remove(f.Name())
	return &spool{f: f, w: bufio.NewWriterSize(f, 256<<10), subxact: map[uint32]int64{}}, nil
}

// append stores one pgoutput message (as received, with its xid) and the WAL
// position it came with. xid is the (sub)transaction the message belongs to.
func (s *spool) append(xid uint32, walStart uint64, data []byte) error {
	if _, seen := s.subxact[xid]; !seen {
		s.subxact[xid] = s.size
		s.order = append(s.order, xid)
	}
	var hdr [12]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	binary.BigEndian.PutUint64(hdr[4:], walStart)
	if _, err := s.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	if _, err := s.w.Write(data); err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	s.size += int64(len(hdr) + len(data))
	s.msgs++
	return nil
}

// abortSubxact drops the changes of subtransaction subxid and of every
// subtransaction that started after it.
func (s *spool) abortSubxact(subxid uint32) error {
	off, ok := s.subxact[subxid]
	if !ok {
		return nil // nothing of it was spooled
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("flush spool: %w", err)
	}
	if err := s.f.Truncate(off); err != nil {
		return fmt.Errorf("truncate spool: %w", err)
	}
	if _, err := s.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek spool: %w", err)
	}
	s.size = off
	s.w.Reset(s.f)
	keep := s.order[:0]
	for _, x := range s.order {
		if s.subxact[x] >= off {
			delete(s.subxact, x)
			continue
		}
		keep = append(keep, x)
	}
	s.order = keep
	return nil
}

// replay calls fn for every spooled message in order. The data slice is
// reused between calls.
func (s *spool) replay(fn func(walStart uint64, data []byte) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("flush spool: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek spool: %w", err)
	}
	r := bufio.NewReaderSize(io.LimitReader(s.f, s.size), 256<<10)
	var hdr [12]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read spool: %w", err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("read spool: %w", err)
		}
		if err := fn(binary.BigEndian.Uint64(hdr[4:]), buf); err != nil {
			return err
		}
	}
}

func (s *spool) close() { _ = s.f.Close() }

// spoolDir returns dir or the system temporary directory.
func spoolDir(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return filepath.Clean(dir)
}
