package pipeline

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/orderflow/orderflow/internal/envelope"
)

// streamPoll is one poll of a generated stream: the dimension events the
// barrier applies first (side), then the group's events in order.
type streamPoll struct {
	side  []streamEv
	group []streamEv
}

type streamEv struct {
	table string
	e     *envelope.Event
}

// randomStream generates polls of order lifecycles: orders placed with one
// to three items (the items read by the barrier of the same poll or a later
// one: late items), status changes, item-only changes, deletes, replayed
// older order events, and customer changes, with several changes of one
// order often in one poll.
func randomStream(seed int64) []streamPoll {
	r := rand.New(rand.NewSource(seed))
	var lsn uint64 = 1
	polls := make([]streamPoll, 40)
	at := func(p int) *streamPoll { return &polls[min(p, len(polls)-1)] }
	for c := int64(1); c <= 4; c++ {
		lsn++
		e := ev(TCustomers, "c", lsn, nil, customer(c, "bronze", "europe"))
		polls[0].side = append(polls[0].side, streamEv{TCustomers, e})
		polls[0].group = append(polls[0].group, streamEv{TCustomers, e})
	}
	for p := int64(1); p <= 3; p++ {
		lsn++
		polls[0].side = append(polls[0].side, streamEv{TProducts, ev(TProducts, "c", lsn, nil, product(p, fmt.Sprint("P", p)))})
	}
	type ord struct {
		id, cust int64
		status   string
		last     *envelope.Event
		items    []int64
		gone     bool
	}
	var orders []*ord
	nextItem := int64(1000)
	for p := 0; p < len(polls)-1; p++ {
		for k := 0; k < 8; k++ {
			lsn++
			switch x := r.Intn(10); {
			case x < 3 || len(orders) == 0: // a new order with its items, one transaction
				o := &ord{id: int64(len(orders) + 1), cust: 1 + r.Int63n(4), status: "placed"}
				o.last = ev(TOrders, "c", lsn, nil, order(o.id, o.cust, "placed"))
				late := r.Intn(3) // items read by this poll's barrier, the next one's, or two later
				for n := 1 + r.Intn(3); n > 0; n-- {
					nextItem++
					o.items = append(o.items, nextItem)
					ie := ev(TOrderItems, "c", lsn, nil, item(nextItem, o.id, 1+r.Int63n(3), 1+r.Intn(3), "10.00"))
					at(p + late).side = append(at(p+late).side, streamEv{TOrderItems, ie})
					polls[p].group = append(polls[p].group, streamEv{TOrderItems, ie})
				}
				polls[p].group = append(polls[p].group, streamEv{TOrders, o.last})
				orders = append(orders, o)
			case x < 6: // a status change of a recent order (often this poll's)
				o := orders[max(0, len(orders)-1-r.Intn(3))]
				if o.gone {
					continue
				}
				o.status = []string{"paid", "shipped", "paid"}[r.Intn(3)]
				before := o.last.After
				o.last = ev(TOrders, "u", lsn, nil, order(o.id, o.cust, o.status))
				o.last.Before = before
				polls[p].group = append(polls[p].group, streamEv{TOrders, o.last})
			case x < 7: // an item-only change (its own transaction)
				o := orders[r.Intn(len(orders))]
				if o.gone || len(o.items) == 0 {
					continue
				}
				ie := ev(TOrderItems, "u", lsn, nil, item(o.items[0], o.id, 2, 5, "12.50"))
				polls[p].side = append(polls[p].side, streamEv{TOrderItems, ie})
				polls[p].group = append(polls[p].group, streamEv{TOrderItems, ie})
			case x < 8: // a customer change, read by the barrier of this poll or the next
				e := ev(TCustomers, "u", lsn, nil, customer(1+r.Int63n(4), []string{"silver", "gold"}[r.Intn(2)], "asia"))
				at(p + r.Intn(2)).side = append(at(p+r.Intn(2)).side, streamEv{TCustomers, e})
				polls[p].group = append(polls[p].group, streamEv{TCustomers, e})
			case x < 9: // a replayed older order event (never overwrites)
				o := orders[r.Intn(len(orders))]
				old := ev(TOrders, "c", o.last.Source.LSN-1, nil, order(o.id, o.cust, "placed"))
				if old.Source.LSN > 0 {
					polls[p].group = append(polls[p].group, streamEv{TOrders, old})
				}
			default: // a delete
				o := orders[r.Intn(len(orders))]
				if o.gone {
					continue
				}
				o.gone = true
				o.last = ev(TOrders, "d", lsn, order(o.id, o.cust, o.status), nil)
				polls[p].group = append(polls[p].group, streamEv{TOrders, o.last})
			}
		}
	}
	return polls
}

// runStream applies polls the way the transformer does (barrier, group
// events, then the repairs and the item-only changes), deriving each fact at
// its event or, with deferred, once per poll. Every poll's rows go to a
// batch of their own (a batch may be flushed after any poll).
func runStream(t *testing.T, polls []streamPoll, deferred bool) ([]*Batch, int) {
	t.Helper()
	s := NewState()
	if deferred {
		s.DeferDerivations()
	}
	var out []*Batch
	derived := 0
	for _, p := range polls {
		b := NewBatch()
		for _, x := range p.side {
			if err := sideApply(s, x.table, x.e); err != nil {
				t.Fatal(err)
			}
		}
		for _, x := range p.group {
			if err := groupApply(s, b, x.table, x.e); err != nil {
				t.Fatal(err)
			}
		}
		if deferred {
			derived += s.DeriveDirty(b)
		}
		s.DrainRepairs(b)
		var ready []int64
		for oid := range s.ItemChanges() {
			ready = append(ready, oid)
		}
		slices.Sort(ready)
		s.DrainItemChanges(b, ready)
		out = append(out, b)
	}
	return out, derived
}

// TestDeferredDerivationSameRows: deriving every changed order once per
// poll writes, poll by poll, exactly the rows that deriving it at each of
// its events writes (a batch keeps the newest row of a key).
func TestDeferredDerivationSameRows(t *testing.T) {
	for _, mode := range []struct {
		name             string
		lazy, predecoded bool
	}{{"maps", false, false}, {"lazy", true, false}, {"predecoded", true, true}} {
		t.Run(mode.name, func(t *testing.T) {
			lazy, predecoded = mode.lazy, mode.predecoded
			defer func() { lazy, predecoded = false, false }()
			for seed := int64(1); seed <= 30; seed++ {
				polls := randomStream(seed)
				eager, _ := runStream(t, polls, false)
				deferred, derived := runStream(t, polls, true)
				orderEvents, facts := 0, 0
				for _, p := range polls {
					for _, x := range p.group {
						if x.table == TOrders {
							orderEvents++
						}
					}
				}
				// the stream must exercise the point: fewer derivations than order events
				if derived == 0 || derived >= orderEvents {
					t.Fatalf("seed %d: %d deferred derivations for %d order events", seed, derived, orderEvents)
				}
				for i := range polls {
					for _, o := range outputs {
						want, got := sortedRows(eager[i], o.name), sortedRows(deferred[i], o.name)
						if !slices.Equal(want, got) {
							t.Fatalf("seed %d poll %d: %s differs\neager:    %d rows %v\ndeferred: %d rows %v", seed, i, o.name, len(want), want, len(got), got)
						}
					}
					facts += len(deferred[i].Table(OutCustomerOrders))
				}
				if facts == 0 {
					t.Fatalf("seed %d: no facts", seed)
				}
			}
		})
	}
}
