package backfill

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// copyParser splits PostgreSQL COPY text output (rows ended by '\n', columns
// separated by '\t', NULL as \N, backslash escapes) into tuples in the form
// pgoutput sends them: text values, unescaped. It is an io.Writer fed by
// pgconn.CopyTo; every complete row goes to row.
type copyParser struct {
	ncols int
	row   func(*pglogrepl.TupleData) error
	buf   []byte // an incomplete trailing row
	tuple pglogrepl.TupleData
	rows  int64
	bytes int64
}

func newCopyParser(ncols int, row func(*pglogrepl.TupleData) error) *copyParser {
	p := &copyParser{ncols: ncols, row: row}
	p.tuple.Columns = make([]*pglogrepl.TupleDataColumn, ncols)
	for i := range p.tuple.Columns {
		p.tuple.Columns[i] = &pglogrepl.TupleDataColumn{}
	}
	p.tuple.ColumnNum = uint16(ncols)
	return p
}

func (p *copyParser) Write(b []byte) (int, error) {
	n := len(b)
	p.bytes += int64(n)
	if len(p.buf) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.buf = append(p.buf, b...)
			return n, nil
		}
		p.buf = append(p.buf, b[:i]...)
		if err := p.line(p.buf); err != nil {
			return 0, err
		}
		p.buf = p.buf[:0]
		b = b[i+1:]
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.buf = append(p.buf, b...)
			break
		}
		if err := p.line(b[:i]); err != nil {
			return 0, err
		}
		b = b[i+1:]
	}
	return n, nil
}

// finish reports a trailing incomplete row (a truncated stream).
func (p *copyParser) finish() error {
	if len(p.buf) > 0 {
		return errors.New("COPY output ends inside a row")
	}
	return nil
}

func (p *copyParser) line(l []byte) error {
	col := 0
	for {
		i := bytes.IndexByte(l, '\t')
		field := l
		if i >= 0 {
			field = l[:i]
		}
		if col >= p.ncols {
			return fmt.Errorf("COPY row has more than %d columns", p.ncols)
		}
		c := p.tuple.Columns[col]
		if len(field) == 2 && field[0] == '\\' && field[1] == 'N' {
			c.DataType, c.Data, c.Length = pglogrepl.TupleDataTypeNull, nil, 0
		} else {
			v, err := unescapeCopy(field)
			if err != nil {
				return err
			}
			c.DataType, c.Data, c.Length = pglogrepl.TupleDataTypeText, v, uint32(len(v))
		}
		col++
		if i < 0 {
			break
		}
		l = l[i+1:]
	}
	if col != p.ncols {
		return fmt.Errorf("COPY row has %d columns, want %d", col, p.ncols)
	}
	p.rows++
	return p.row(&p.tuple)
}

// unescapeCopy undoes COPY text escaping. Without a backslash the field is
// returned as is (it aliases the input: the caller consumes it at once).
func unescapeCopy(f []byte) ([]byte, error) {
	if bytes.IndexByte(f, '\\') < 0 {
		return f, nil
	}
	out := make([]byte, 0, len(f))
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(f) {
			return nil, errors.New("COPY field ends with a backslash")
		}
		switch e := f[i]; e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'v':
			out = append(out, '\v')
		case 'x':
			v, n := 0, 0
			for n < 2 && i+1 < len(f) && isHex(f[i+1]) {
				i++
				v = v*16 + hexVal(f[i])
				n++
			}
			if n == 0 {
				out = append(out, 'x')
			} else {
				out = append(out, byte(v))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for n := 1; n < 3 && i+1 < len(f) && f[i+1] >= '0' && f[i+1] <= '7'; n++ {
				i++
				v = v*8 + int(f[i]-'0')
			}
			out = append(out, byte(v))
		default:
			out = append(out, e)
		}
	}
	return out, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}
