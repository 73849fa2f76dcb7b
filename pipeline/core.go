package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/orderflow/orderflow/internal/envelope"
)

// Rec is one consumed change event with where it came from.
type Rec struct {
	Table     string // captured table (customers, orders, ...)
	Key       []byte // Kafka record key (JSON of the primary key)
	Partition int32
	Size      int // bytes of the record value
	Event     *envelope.Event

	rawBefore, rawAfter []byte   // the images' JSON as received, when known
	pre                 *decoded // what was derived from them ahead (transformer), or nil
}

// Reasons for a poison event (the dlq_total label and the DLQ header).
const (
	ReasonDecode       = "decode"         // the value is not a valid envelope
	ReasonColumn       = "invalid_column" // a column value has the wrong type
	ReasonNoKey        = "missing_key"    // no primary key in the event
	ReasonUnknownTable = "unknown_table"
)

// PoisonError is an event that can never be applied; it goes to the DLQ.
type PoisonError struct {
	Reason string
	Err    error
}

func (e *PoisonError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *PoisonError) Unwrap() error { return e.Err }

func poison(reason string, err error) error { return &PoisonError{Reason: reason, Err: err} }

// IsPoison reports whether err is a PoisonError and returns its reason.
func IsPoison(err error) (string, bool) {
	var p *PoisonError
	if errors.As(err, &p) {
		return p.Reason, true
	}
	if errors.Is(err, envelope.ErrPoison) {
		return ReasonDecode, true
	}
	return "", false
}

// State is the transformer's join state and the pure core that turns change
// events into rows. It is not safe for concurrent use.
//
// Dimension state (customers, products, campaigns with every version, and
// order items with every version) is fed by ApplySide from the dimension
// topics, which every instance reads fully. Order state is fed by ApplyGroup
// from the orders partitions this instance owns in the consumer group.
type State struct {
	customers *history[Customer]
	products  *history[Product]
	campaigns *history[Campaign]
	items     *items
	orders    idMap[*orderState]
	byCust    idMap[[]int64] // customer id -> owned order ids (late-dimension repair)
	pending   map[int64]struct{}
	quiet     map[int32]bool // orders partitions being re-read for state only
	// itemOnly: owned orders with item changes newer than their last order
	// event (an item changed in a transaction that did not touch the
	// order row), by the newest such item LSN. See DrainItemChanges.
	itemOnly map[int64]uint64
	// noChangeLog: emit no change_log rows (a direct backfill's snapshot
	// rows; see Snapshot).
	noChangeLog bool
	// deferDerive: ApplyGroup marks a changed order dirty instead of
	// deriving its fact at once; DeriveDirty derives each dirty order once.
	deferDerive bool
	dirty       []*orderState
}

// NewState returns empty state.
func NewState() *State {
	return &State{
		customers: newHistory[Customer](),
		products:  newHistory[Product](),
		campaigns: newHistory[Campaign](),
		items:     newItems(),
		pending:   make(map[int64]struct{}),
		quiet:     make(map[int32]bool),
		itemOnly:  make(map[int64]uint64),
	}
}

// Sizes reports the number of keys held per kind of state.
func (s *State) Sizes() map[string]int {
	return map[string]int{
		"customers": s.customers.len(), "products": s.products.len(), "campaigns": s.campaigns.len(),
		"items": s.items.order.len(), "orders": s.orders.len(),
	}
}

func commitMicros(ev *envelope.Event) Micros { return Micros(ev.Source.TsMs * 1000) }

// ApplySide applies a dimension-topic event (customers, products, campaigns,
// order_items) to the join state. Every instance applies every such event.
func (s *State) ApplySide(table string, ev *envelope.Event) error {
	return s.applySide(table, ev, nil, nil)
}

// imageOf returns the raw JSON of the image ev leaves, when known.
func imageOf(ev *envelope.Event, rawBefore, rawAfter []byte) []byte {
	if ev.Op == envelope.OpDelete {
		return rawBefore
	}
	return rawAfter
}

// eventID reads the primary key from the raw image or the decoded one.
func eventID(ev *envelope.Event, raw []byte) (int64, bool) {
	if raw != nil {
		if id, ok := rawID(raw); ok {
			return id, true
		}
	}
	return keyID(ev)
}

// decoders from the raw image when known (parsed ahead when pre has it),
// else from the decoded map.
func (s *State) customerOf(ev *envelope.Event, raw []byte, prev Customer, pre *decoded) (Customer, error) {
	if raw != nil {
		if pre != nil && pre.parsed {
			return pre.img.c.over(prev, pre.img.mask), pre.img.err
		}
		return customerFromJSON(raw, prev)
	}
	return decodeCustomer(ev.Image(), prev)
}

func productOf(ev *envelope.Event, raw []byte, prev Product, pre *decoded) (Product, error) {
	if raw != nil {
		if pre != nil && pre.parsed {
			return pre.img.p.over(prev, pre.img.mask), pre.img.err
		}
		return productFromJSON(raw, prev)
	}
	return decodeProduct(ev.Image(), prev)
}

func campaignOf(ev *envelope.Event, raw []byte, prev Campaign, pre *decoded) (Campaign, error) {
	if raw != nil {
		if pre != nil && pre.parsed {
			return pre.img.k.over(prev, pre.img.mask), pre.img.err
		}
		return campaignFromJSON(raw, prev)
	}
	return decodeCampaign(ev.Image(), prev)
}

func orderOf(ev *envelope.Event, raw []byte, prev Order, pre *decoded) (Order, error) {
	if raw != nil {
		if pre != nil && pre.parsed {
			return pre.img.o.over(prev, pre.img.mask), pre.img.err
		}
		return orderFromJSON(raw, prev)
	}
	return decodeOrder(ev.Image(), prev)
}

func itemOf(ev *envelope.Event, raw []byte, prev Item, pre *decoded) (Item, error) {
	if raw != nil {
		if pre != nil && pre.parsed {
			return pre.img.it.over(prev, pre.img.mask), pre.img.err
		}
		return itemFromJSON(raw, prev)
	}
	return decodeItem(ev.Image(), prev)
}

// itemColumns are the field bits of every order_items column.
const itemColumns = fID | f1 | f2 | f3 | f4 | f5 | f6 | f7 | f8

// itemPrev is the item row an order_items event at lsn is decoded over (the
// TOAST carry-forward of itemOf): the newest version before lsn, unless the
// image parsed ahead sets every column, which leaves nothing to carry (and
// spares two lookups in the indexes of every item).
func (s *State) itemPrev(id int64, lsn uint64, raw []byte, pre *decoded) Item {
	if raw != nil && pre != nil && pre.parsed && pre.img.mask&itemColumns == itemColumns {
		return Item{}
	}
	prev, _ := s.items.latestBefore(id, lsn)
	return prev.Row
}

// idOf is eventID, computed ahead when pre has it.
func idOf(ev *envelope.Event, raw []byte, pre *decoded) (int64, bool) {
	if pre != nil {
		return pre.id, pre.idOK
	}
	return eventID(ev, raw)
}

func (s *State) applySide(table string, ev *envelope.Event, rawBefore, rawAfter []byte) error {
	return s.applySideDecoded(table, ev, rawBefore, rawAfter, nil)
}

// applySideDecoded is applySide with what the transformer derived from the
// event ahead (pre, from the same ev and images), or nil.
func (s *State) applySideDecoded(table string, ev *envelope.Event, rawBefore, rawAfter []byte, pre *decoded) error {
	raw := imageOf(ev, rawBefore, rawAfter)
	id, ok := idOf(ev, raw, pre)
	if !ok {
		return poison(ReasonNoKey, fmt.Errorf("%s event without id", table))
	}
	lsn, ts, del := ev.Source.LSN, commitMicros(ev), ev.Op == envelope.OpDelete
	switch table {
	case TCustomers:
		prev, _ := s.customers.before(id, lsn)
		c, err := s.customerOf(ev, raw, prev.Row, pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		c.ID = id
		s.customers.put(id, version[Customer]{LSN: lsn, Ts: ts, Deleted: del, Row: c})
		s.repairCustomer(id)
	case TProducts:
		prev, _ := s.products.before(id, lsn)
		p, err := productOf(ev, raw, prev.Row, pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		p.ID = id
		s.products.put(id, version[Product]{LSN: lsn, Ts: ts, Deleted: del, Row: p})
	case TCampaigns:
		prev, _ := s.campaigns.before(id, lsn)
		c, err := campaignOf(ev, raw, prev.Row, pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		c.ID = id
		s.campaigns.put(id, version[Campaign]{LSN: lsn, Ts: ts, Deleted: del, Row: c})
	case TOrderItems:
		it, err := itemOf(ev, raw, s.itemPrev(id, lsn, raw, pre), pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		it.ID = id
		if it.OrderID == 0 {
			return poison(ReasonColumn, fmt.Errorf("order_items %d: unknown order_id", id))
		}
		s.items.put(version[Item]{LSN: lsn, Ts: ts, Deleted: del, Row: it})
		// An item of an owned order whose fact was derived at or after the
		// item's LSN without it (the item arrived late): re-derive.
		if st := s.orders.at(it.OrderID); st != nil && lsn <= st.LSN && s.items.countAsOf(it.OrderID, st.LSN) != st.derivedN {
			s.pending[it.OrderID] = struct{}{}
		} else if st != nil && lsn > st.LSN {
			s.itemOnly[it.OrderID] = max(s.itemOnly[it.OrderID], lsn)
		}
	case TOrders:
		return fmt.Errorf("orders is not a side table")
	default:
		return poison(ReasonUnknownTable, fmt.Errorf("table %q", table))
	}
	return nil
}

// repairCustomer queues the owned orders of customer id whose fact used a
// different customer version than the one now in force at their placement
// (a customer event that arrived after the order's): they are re-derived by
// DrainRepairs, so no fact keeps stale or unknown attributes.
func (s *State) repairCustomer(id int64) {
	for _, oid := range s.byCust.at(id) {
		st := s.orders.at(oid)
		if st == nil || st.CustomerID != id {
			continue
		}
		if v, ok := s.customers.lookup(id, st.PlacedLSN, st.PlacedAt); ok && v.LSN != st.CustVer {
			s.pending[oid] = struct{}{}
		}
	}
}

// addByCust records that customer cid has order oid.
func (s *State) addByCust(cid, oid int64) {
	p, _ := s.byCust.slot(cid)
	*p = append(*p, oid)
}

// DeferDerivations makes ApplyGroup mark a changed order dirty instead of
// deriving its fact at once; DeriveDirty then derives every dirty order once
// from its state at that point. An order changed several times (placed, then
// paid) between two calls is derived once instead of once per event; the
// rows are those its last event would have produced (the batch keeps only
// the last row of a key anyway), as long as DeriveDirty runs before the
// dimension state changes (before the next barrier) and before the batch is
// taken.
func (s *State) DeferDerivations() { s.deferDerive = true }

// DeriveDirty derives the fact rows of every order ApplyGroup marked dirty
// into b and returns how many.
func (s *State) DeriveDirty(b *Batch) int {
	n := 0
	for _, st := range s.dirty {
		st.dirty = false
		if s.orders.at(st.ID) != st || s.quiet[st.Partition] {
			continue // its partition was dropped, or is re-read for state only
		}
		s.deriveOrder(b, st)
		delete(s.pending, st.ID) // derived from the state a repair would use
		n++
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	return n
}

// DrainRepairs re-derives the facts queued by late dimension events into b.
func (s *State) DrainRepairs(b *Batch) int {
	n := 0
	for oid := range s.pending {
		st := s.orders.at(oid)
		if st == nil {
			delete(s.pending, oid)
			continue
		}
		if s.quiet[st.Partition] {
			continue
		}
		s.deriveOrder(b, st)
		delete(s.pending, oid)
		n++
	}
	return n
}

// ItemChanges lists the owned orders with item changes newer than their last
// order event, with the orders partition each lives in.
func (s *State) ItemChanges() map[int64]int32 {
	out := make(map[int64]int32, len(s.itemOnly))
	for oid := range s.itemOnly {
		if st := s.orders.at(oid); st != nil {
			out[oid] = st.Partition
		} else {
			delete(s.itemOnly, oid)
		}
	}
	return out
}

// DrainItemChanges re-derives the facts of the given orders at the LSN of
// their newest item change: order state as of its last event, items as of
// that LSN. The caller passes only orders whose partition has been consumed
// past every order event committed before the item change (so no order event
// older than the item is missing from the state): the row is then exactly
// the state at that LSN, whoever derives it.
func (s *State) DrainItemChanges(b *Batch, ready []int64) int {
	n := 0
	for _, oid := range ready {
		lsn, ok := s.itemOnly[oid]
		st := s.orders.at(oid)
		if !ok || st == nil || s.quiet[st.Partition] {
			continue
		}
		delete(s.itemOnly, oid)
		if lsn > st.LSN {
			s.deriveOrderAt(b, st, lsn)
			n++
		}
	}
	return n
}

// SetQuiet marks an orders partition as being re-read for state only (its
// events were applied before the committed offset); quiet=false makes it live.
func (s *State) SetQuiet(p int32, quiet bool) {
	if quiet {
		s.quiet[p] = true
	} else {
		delete(s.quiet, p)
	}
}

// DropPartition forgets the orders of a partition this instance no longer owns.
func (s *State) DropPartition(p int32) {
	for id, st := range s.orders.all() {
		if (*st).Partition == p {
			s.orders.delete(id)
			delete(s.pending, id)
			delete(s.itemOnly, id)
		}
	}
	delete(s.quiet, p)
	for cid, oids := range s.byCust.all() {
		keep := (*oids)[:0]
		for _, oid := range *oids {
			if s.orders.has(oid) {
				keep = append(keep, oid)
			}
		}
		if len(keep) == 0 {
			s.byCust.delete(cid)
		} else {
			*oids = keep
		}
	}
}

// ApplyGroup applies an event consumed in the group: it updates the order
// state (orders) and, when emit is true, adds the rows the event produces to
// b: the raw mirror row and the change-log row for every table, dimension and
// history rows for dimensions, the customer_orders fact and order_lines for
// orders. emit is false while an orders partition is re-read for state only.
// A dimension event's row is decoded on top of the side state's previous
// version (TOAST carry-forward); ApplySide must have seen events up to it.
func (s *State) ApplyGroup(b *Batch, r Rec) error {
	return s.applyGroup(b, r, true, false)
}

// Replay applies an orders event for state only (no rows).
func (s *State) Replay(r Rec) error { return s.applyGroup(nil, r, false, false) }

// applyLoaded applies an event whose rows a direct backfill has already
// written to ClickHouse (the record carries HeaderLoaded): state only, left
// as if the transformer had derived those rows itself, so that no repair
// derives them again. The side tables' state comes from the side reader;
// for them this only validates the event.
func (s *State) applyLoaded(r Rec) error { return s.applyGroup(nil, r, false, true) }

func (s *State) applyGroup(b *Batch, r Rec, emit, loaded bool) error {
	ev := r.Event
	raw := imageOf(ev, r.rawBefore, r.rawAfter)
	if ev.Image() != nil {
		raw = nil // decoded maps given (e.g. by envelope.Decode): use them
	}
	id, ok := idOf(ev, raw, r.pre)
	if !ok {
		return poison(ReasonNoKey, fmt.Errorf("%s event without id", r.Table))
	}
	lsn, ts := ev.Source.LSN, commitMicros(ev)
	del := ev.Op == envelope.OpDelete
	var dl uint8
	if del {
		dl = 1
	}
	switch r.Table {
	case TCustomers:
		prev, _ := s.customers.before(id, lsn)
		c, err := s.customerOf(ev, raw, prev.Row, r.pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		c.ID = id
		if emit {
			b.row(OutRawCustomers, rowKey{id, 0}, lsn).i64(id).str(c.Name).str(c.Email).nullStr(c.Phone).str(c.Segment.String()).str(c.Region.String()).str(c.Country.String()).str(c.City.String()).
				time(c.CreatedAt).time(c.UpdatedAt).u64(lsn).u8(dl).time(ts).end()
			b.row(OutCustomers, rowKey{id, 0}, lsn).i64(id).str(c.Name).str(c.Email).nullStr(c.Phone).str(c.Segment.String()).str(c.Region.String()).str(c.Country.String()).str(c.City.String()).
				time(c.CreatedAt).time(c.UpdatedAt).u64(lsn).u8(dl).end()
			b.row(OutCustomerHist, rowKey{id, int64(lsn)}, lsn).i64(id).u64(lsn).time(ts).str(c.Name).str(c.Email).nullStr(c.Phone).str(c.Segment.String()).str(c.Region.String()).str(c.Country.String()).str(c.City.String()).
				time(c.CreatedAt).u64(lsn).u8(dl).end()
		}
	case TProducts:
		prev, _ := s.products.before(id, lsn)
		p, err := productOf(ev, raw, prev.Row, r.pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		if emit {
			b.row(OutRawProducts, rowKey{id, 0}, lsn).i64(id).str(p.SKU).str(p.Name).str(p.Category.String()).money(p.Price).str(p.Currency).time(p.CreatedAt).time(p.UpdatedAt).u64(lsn).u8(dl).time(ts).end()
			b.row(OutProducts, rowKey{id, 0}, lsn).i64(id).str(p.SKU).str(p.Name).str(p.Category.String()).money(p.Price).str(p.Currency).time(p.UpdatedAt).u64(lsn).u8(dl).end()
		}
	case TCampaigns:
		prev, _ := s.campaigns.before(id, lsn)
		c, err := campaignOf(ev, raw, prev.Row, r.pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		if emit {
			b.row(OutRawCampaigns, rowKey{id, 0}, lsn).i64(id).str(c.Code).str(c.Name).time(c.StartsAt).time(c.EndsAt).money(c.DiscountPct).time(c.CreatedAt).time(c.UpdatedAt).u64(lsn).u8(dl).time(ts).end()
			b.row(OutCampaigns, rowKey{id, 0}, lsn).i64(id).str(c.Code).str(c.Name).time(c.StartsAt).time(c.EndsAt).money(c.DiscountPct).time(c.UpdatedAt).u64(lsn).u8(dl).end()
		}
	case TOrderItems:
		it, err := itemOf(ev, raw, s.itemPrev(id, lsn, raw, r.pre), r.pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		if emit {
			b.row(OutRawOrderItems, rowKey{id, 0}, lsn).i64(id).i64(it.OrderID).i32(it.LineNo).i64(it.ProductID).i32(it.Quantity).money(it.UnitPrice).money(it.Discount).
				time(it.CreatedAt).time(it.UpdatedAt).u64(lsn).u8(dl).time(ts).end()
		}
	case TOrders:
		st := s.orders.at(id)
		stale := st != nil && lsn < st.LSN
		prev := newOrder()
		if st != nil {
			prev = st.Order
		}
		o, err := orderOf(ev, raw, prev, r.pre)
		if err != nil {
			return poison(ReasonColumn, err)
		}
		o.ID = id
		if emit {
			b.row(OutRawOrders, rowKey{id, 0}, lsn).i64(id).i64(o.CustomerID).nullInt(o.CampaignID).str(o.Status.String()).str(o.Currency.String()).money(o.Subtotal).money(o.Discount).money(o.Total).
				time(o.PlacedAt).nullTime(o.PaidAt).nullTime(o.ShippedAt).nullTime(o.DeliveredAt).nullTime(o.CancelledAt).nullTime(o.RefundedAt).
				time(o.CreatedAt).time(o.UpdatedAt).u64(lsn).u8(dl).time(ts).end()
		}
		if !stale {
			if st == nil {
				st = &orderState{Partition: r.Partition}
				if ev.Op == envelope.OpCreate || ev.Op == envelope.OpRead {
					st.PlacedLSN = lsn
				}
				s.orders.set(id, st)
				s.addByCust(o.CustomerID, id)
			} else if st.CustomerID != o.CustomerID {
				s.addByCust(o.CustomerID, id)
			}
			st.Order, st.LSN, st.Ts, st.Deleted, st.Partition = o, lsn, ts, del, r.Partition
			switch {
			case emit && s.deferDerive:
				if !st.dirty {
					st.dirty = true
					s.dirty = append(s.dirty, st)
				}
			case emit:
				s.deriveOrder(b, st)
			case loaded:
				s.noteDerived(st, lsn)
				fallthrough
			default:
				if m := s.items.maxLSN(id); m > lsn {
					s.itemOnly[id] = max(s.itemOnly[id], m)
				} else {
					delete(s.itemOnly, id)
				}
			}
		}
	default:
		return poison(ReasonUnknownTable, fmt.Errorf("table %q", r.Table))
	}
	if emit {
		if !s.noChangeLog {
			changeLogRow(b, r, id)
		}
		b.noteEvent(r.Size, ts)
	}
	return nil
}

// noteDerived records what deriveOrderAt(st, ver) would have used (item
// count, customer version) without deriving: the rows exist already.
// It returns that customer row (zero when unknown).
func (s *State) noteDerived(st *orderState, ver uint64) Customer {
	return s.noteDerivedIn(st, ver, s.items.byOrder.at(st.ID))
}

// noteDerivedIn is noteDerived with the order's item versions at hand.
func (s *State) noteDerivedIn(st *orderState, ver uint64, vs []version[Item]) Customer {
	st.derivedN = countItemsAsOf(vs, ver)
	st.CustVer = 0
	cust, ok := s.customers.lookup(st.CustomerID, st.PlacedLSN, st.PlacedAt)
	if ok {
		st.CustVer = cust.LSN
	}
	return cust.Row
}

// deriveOrder adds the customer_orders fact and the order_lines of an order
// from its state: customer and campaign as of the placement, items and
// products as of the order's last applied event. _version is that event's LSN
// (every item version used is at or below it).
func (s *State) deriveOrder(b *Batch, st *orderState) { s.deriveOrderAt(b, st, st.LSN) }

// deriveOrderAt derives the order's rows at version ver >= st.LSN.
func (s *State) deriveOrderAt(b *Batch, st *orderState, ver uint64) {
	vs := s.items.byOrder.at(st.ID) // looked up once
	c := s.noteDerivedIn(st, ver, vs)
	if m := maxItemLSN(vs); m > ver {
		s.itemOnly[st.ID] = max(s.itemOnly[st.ID], m)
	} else if ver >= s.itemOnly[st.ID] {
		delete(s.itemOnly, st.ID)
	}
	var dl uint8
	if st.Deleted {
		dl = 1
	}
	campCode := ""
	if st.CampaignID.Valid {
		if camp, ok := s.campaigns.lookup(st.CampaignID.V, st.PlacedLSN, st.PlacedAt); ok {
			campCode = camp.Row.Code
		}
	}
	its := s.items.asOfIn(vs, ver)
	var count, units uint32
	for _, it := range its {
		if !it.Deleted {
			count++
			units += uint32(max(it.Row.Quantity, 0))
		}
	}
	fact := factRow{o: st.Order, custVer: st.CustVer, ver: ver, name: c.Name, email: c.Email, seg: c.Segment, region: c.Region, country: c.Country, city: c.City,
		signup: c.CreatedAt, campCode: campCode, count: count, units: units, dl: dl}
	addLazy(b, b.facts, &b.factRows, rowKey{st.ID, 0}, ver, &fact)
	// product_first: the first live line of each product (its is sorted by
	// item id), so that sum(product_first) counts the orders of a product.
	var seenBuf [16]int64
	seen := seenBuf[:0]
	for _, it := range its {
		p, _ := s.products.lookup(it.Row.ProductID, ver, NullTime)
		ld := dl
		if it.Deleted {
			ld = 1
		}
		var first uint8
		if !it.Deleted && !slices.Contains(seen, it.Row.ProductID) {
			first = 1
			seen = append(seen, it.Row.ProductID)
		}
		line := lineRow{orderID: st.ID, it: it.Row, sku: p.Row.SKU, name: p.Row.Name, cat: p.Row.Category, custID: st.CustomerID, seg: c.Segment, region: c.Region, country: c.Country,
			campaign: st.CampaignID, status: st.Status, placedAt: st.PlacedAt, first: first, ver: ver, ld: ld}
		addLazy(b, b.lines, &b.lineRows, rowKey{st.ID, it.Row.ID}, ver, &line)
	}
}

// factRow is a customer_orders row as the apply derives it; write (run by
// the batch's writer) lays it out in the table's columns.
type factRow struct {
	o                          Order
	custVer, ver               uint64
	name, email, campCode      string
	seg, region, country, city Sym
	signup                     Micros
	count, units               uint32
	dl                         uint8
}

func (f *factRow) write(r rowW) {
	o := &f.o
	r.i64(o.ID).i64(o.CustomerID).str(f.name).str(f.email).str(f.seg.String()).str(f.region.String()).str(f.country.String()).str(f.city.String()).time(f.signup).u64(f.custVer).
		nullInt(o.CampaignID).str(f.campCode).str(o.Status.String()).str(o.Currency.String()).
		time(o.PlacedAt).nullTime(o.PaidAt).nullTime(o.ShippedAt).nullTime(o.DeliveredAt).nullTime(o.CancelledAt).nullTime(o.RefundedAt).
		u32(f.count).u32(f.units).money(o.Subtotal).money(o.Discount).money(o.Total).time(o.UpdatedAt).u64(f.ver).u8(f.dl).end()
}

// lineRow is an order_lines row: the item, its product and the order's
// customer attributes as of the fact's version.
type lineRow struct {
	it                   Item
	sku, name            string
	cat                  Sym
	seg, region, country Sym
	status               Sym
	orderID, custID      int64
	campaign             NullInt
	placedAt             Micros
	ver                  uint64
	first, ld            uint8
}

func (l *lineRow) write(r rowW) {
	it := &l.it
	r.i64(l.orderID).i64(it.ID).i32(it.LineNo).i64(it.ProductID).str(l.sku).str(l.name).str(l.cat.String()).
		i32(it.Quantity).money(it.UnitPrice).money(it.Discount).money(it.LineTotal()).
		i64(l.custID).str(l.seg.String()).str(l.region.String()).str(l.country.String()).nullInt(l.campaign).str(l.status.String()).time(l.placedAt).u8(l.first).u64(l.ver).u8(l.ld).end()
}

// changeLogRow adds the change_log row of r (the event's primary key id).
func changeLogRow(b *Batch, r Rec, id int64) {
	ev := r.Event
	cl := changeLogText{}
	if r.pre != nil && r.pre.clReady {
		cl = r.pre.cl
	} else {
		cl = changeLogOf(r.Table, r.Key, ev, id, r.rawBefore, r.rawAfter)
	}
	row := clogRow{table: r.Table, op: ev.Op, lsn: ev.Source.LSN, txid: ev.Source.TxID, ts: commitMicros(ev), text: cl}
	addLazy(b, b.clog, &b.clogRows, rowKey{}, ev.Source.LSN, &row)
}

// clogRow is a change_log row.
type clogRow struct {
	table, op string
	lsn       uint64
	txid      int64
	ts        Micros
	text      changeLogText
}

func (c *clogRow) write(r rowW) {
	r.str(c.table).str(c.text.key).str(c.op).u64(c.lsn).i64(c.txid).time(c.ts).bytes(c.text.before).bytes(c.text.after).u64(c.text.hash).end()
}

// changeLogOf is the text of an event's change_log row: the record key (or
// {"id":N}), the images as received (or re-encoded from the decoded maps),
// and the event_id hash over them.
func changeLogOf(table string, recKey []byte, ev *envelope.Event, id int64, rawBefore, rawAfter []byte) changeLogText {
	key := string(recKey)
	if key == "" {
		key = `{"id":` + strconv.FormatInt(id, 10) + `}`
	}
	before, after := rawBefore, rawAfter
	if rawBefore == nil && rawAfter == nil {
		before, after = []byte(rowJSON(ev.Before)), []byte(rowJSON(ev.After))
	}
	return changeLogText{key: key, before: before, after: after, hash: eventHash(table, key, ev.Op, ev.Source.LSN, before, after)}
}

// eventHash is the change_log event_id: 64-bit FNV-1a over the table, key,
// op, the LSN (8 bytes big-endian and a zero byte), before and after, each
// followed by a zero byte.
// (Computed inline: hash/fnv through io.WriteString copied every string.)
func eventHash(table, key, op string, lsn uint64, before, after []byte) uint64 {
	h := fnvAdd(fnvOffset64, table)
	h = fnvAdd(h, key)
	h = fnvAdd(h, op)
	for i := 7; i >= 0; i-- {
		h ^= uint64(byte(lsn >> (8 * i)))
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the LSN's ninth byte (zero)
	h *= fnvPrime64 // the separator
	h = fnvAdd(h, before)
	return fnvAdd(h, after)
}

const fnvOffset64, fnvPrime64 = 14695981039346656037, 1099511628211

// fnvAdd hashes s and a zero separator into h.
func fnvAdd[T string | []byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h * fnvPrime64 // the zero separator: h ^= 0, h *= prime
}

func rowJSON(r envelope.Row) string {
	if r == nil {
		return ""
	}
	b, err := json.Marshal(r)
	if err != nil {
		return ""
	}
	return string(b)
}
