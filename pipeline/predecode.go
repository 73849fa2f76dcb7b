package pipeline

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
)

// decoded is a record's envelope, decoded ahead of the record's apply.
// Decoding is a pure function of the record value, so it runs on other
// cores while the transformer applies events (which is sequential).
type decoded struct {
	ev            *envelope.Event // &evv on the fast path
	evv           envelope.Event
	before, after []byte
	err           error

	// Filled ahead too when the envelope decoded: the primary key, the
	// image parsed into its table's struct, and the change_log row's text
	// and hash (group records only).
	id      int64
	idOK    bool
	parsed  bool
	img     parsedImage
	clReady bool
	cl      changeLogText
}

// parsedImage is a row image parsed by its table's parse function.
type parsedImage struct {
	mask uint32
	err  error
	c    Customer
	p    Product
	k    Campaign
	o    Order
	it   Item
}

// changeLogText is the text of a change_log row and its event_id; before
// and after reference the record's images.
type changeLogText struct {
	key           string
	before, after []byte
	hash          uint64
}

// decodeChunk is how many records a decode worker takes at a time: the
// unit the apply waits for.
const decodeChunk = 256

// decodeAhead decodes a run of records on up to GOMAXPROCS goroutines,
// chunk by chunk in record order, while the caller applies them: the apply
// waits (ready) only for the chunk it is about to read, not for the whole
// run, so decoding and the sequential apply overlap.
type decodeAhead struct {
	done []chan struct{} // closed when chunk i is decoded
	wg   sync.WaitGroup
}

// startDecode starts filling out[i] with decodeEventLazy of recs[i] (zero
// for transaction markers and tombstones) and what follows from it alone.
// table maps a record's topic to its table; rows asks for the change_log
// text too. The caller reads out[i] only after ready(i), and calls wait
// before reusing recs or out.
func startDecode(recs []*kgo.Record, out []decoded, table map[string]string, rows bool) *decodeAhead {
	n := (len(recs) + decodeChunk - 1) / decodeChunk
	d := &decodeAhead{done: make([]chan struct{}, n)}
	for i := range d.done {
		d.done[i] = make(chan struct{})
	}
	var next atomic.Int64
	for w := min(runtime.GOMAXPROCS(0), n); w > 0; w-- {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for c := int(next.Add(1) - 1); c < n; c = int(next.Add(1) - 1) {
				lo := c * decodeChunk
				hi := min(lo+decodeChunk, len(recs))
				decodeRange(recs[lo:hi], out[lo:hi], table, rows)
				close(d.done[c])
			}
		}()
	}
	return d
}

// ready waits until out[i] is decoded.
func (d *decodeAhead) ready(i int) {
	if i%decodeChunk == 0 {
		<-d.done[i/decodeChunk]
	}
}

// wait waits until every record is decoded.
func (d *decodeAhead) wait() { d.wg.Wait() }

func decodeRange(recs []*kgo.Record, out []decoded, table map[string]string, rows bool) {
	var c envInterner
	for i, r := range recs {
		d := &out[i]
		*d = decoded{}
		if len(r.Value) == 0 || r.Attrs.IsControl() {
			continue
		}
		tb, rowsOf := table[r.Topic], rows
		if rows && loadedRecord(r) {
			// written by a direct backfill: the group path applies only
			// orders, to its state, and writes no change_log row
			if tb != TOrders {
				continue
			}
			rowsOf = false
		}
		d.ev, d.before, d.after, d.err = decodeEventScan(r.Value, &d.evv, &c)
		if d.err != nil || d.ev == nil {
			continue
		}
		d.prepare(tb, r.Key, rowsOf)
	}
}

// prepare fills what follows from the decoded envelope alone, the way
// applySide and applyGroup would compute it.
func (d *decoded) prepare(table string, key []byte, rows bool) {
	ev := d.ev
	raw := imageOf(ev, d.before, d.after)
	if ev.Image() != nil {
		raw = nil
	}
	if raw != nil {
		d.parsed = true
		im := &d.img
		var id int64
		switch table {
		case TCustomers:
			im.c, im.mask, im.err = parseCustomer(raw)
			id = im.c.ID
		case TProducts:
			im.p, im.mask, im.err = parseProduct(raw)
			id = im.p.ID
		case TCampaigns:
			im.k, im.mask, im.err = parseCampaign(raw)
			id = im.k.ID
		case TOrders:
			im.o, im.mask, im.err = parseOrder(raw)
			id = im.o.ID
		case TOrderItems:
			im.it, im.mask, im.err = parseItem(raw)
			id = im.it.ID
		default:
			d.parsed = false
		}
		// One valid, non-null "id" column: what rawID would read.
		if d.parsed && im.err == nil && im.mask&(fID|fIDSeen|fIDDup) == fID|fIDSeen {
			d.id, d.idOK = id, true
		}
	}
	if !d.idOK {
		d.id, d.idOK = eventID(ev, raw)
	}
	if rows && d.idOK {
		d.cl, d.clReady = changeLogOf(table, key, ev, d.id, d.before, d.after), true
	}
}

// records lists the records of fs in the order EachRecord visits them.
func records(fs kgo.Fetches, into []*kgo.Record) []*kgo.Record {
	into = into[:0]
	fs.EachRecord(func(r *kgo.Record) { into = append(into, r) })
	return into
}
