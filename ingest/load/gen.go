package load

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/orderflow/orderflow/ingest/domain"
)

// Params shape a generated workload. The same Params give the same
// catalogue and the same event stream, byte for byte.
type Params struct {
	Seed      uint64
	Customers int           // customers created over the run (30 % exist before Start)
	Orders    int           // orders placed
	Products  int           // catalogue size
	Campaigns int           // discount campaigns spread over the span
	Start     time.Time     // simulated time of the first order
	Span      time.Duration // simulated time over which orders arrive
	Namespace string        // optional [a-z0-9]{1,8}, keeps emails/SKUs/codes of several runs apart
}

// DefaultStart is the simulated clock's origin.
var DefaultStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (p *Params) defaults() error {
	if p.Products <= 0 {
		p.Products = 500
	}
	if p.Campaigns < 0 {
		p.Campaigns = 0
	}
	if p.Start.IsZero() {
		p.Start = DefaultStart
	}
	if p.Span <= 0 {
		p.Span = 365 * 24 * time.Hour
	}
	if p.Orders < 0 || p.Customers < 0 {
		return fmt.Errorf("customers and orders must not be negative")
	}
	if p.Orders > 0 && p.Customers == 0 {
		return fmt.Errorf("orders need at least one customer")
	}
	if len(p.Namespace) > 8 || strings.Trim(p.Namespace, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return fmt.Errorf("namespace %q: use at most 8 lower-case letters or digits", p.Namespace)
	}
	return nil
}

// ProductRec is a generated product.
type ProductRec struct {
	SKU, Name, Category string
	Price               domain.Money
	Currency            string
}

// CampaignRec is a generated campaign; Uplift multiplies the order rate
// while it runs.
type CampaignRec struct {
	Code, Name       string
	StartsAt, EndsAt time.Time
	Percent          domain.Percent
	Uplift           float64
}

// Catalogue is what exists before the first event: products and campaigns,
// created at CreatedAt.
type Catalogue struct {
	Products  []ProductRec
	Campaigns []CampaignRec
	CreatedAt time.Time
}

// Kind is the type of an event.
type Kind uint8

// Event kinds.
const (
	KCustomer Kind = iota
	KCustomerUpdate
	KOrder
	KPay
	KShip
	KDeliver
	KCancel
	KRefund
	numKinds
)

var kindNames = [...]string{"customer", "customer_update", "order", "pay", "ship", "deliver", "cancel", "refund"}

func (k Kind) String() string { return kindNames[k] }

// Action returns the order status action of a lifecycle event.
func (k Kind) Action() (domain.Action, bool) {
	switch k {
	case KPay:
		return domain.ActPay, true
	case KShip:
		return domain.ActShip, true
	case KDeliver:
		return domain.ActDeliver, true
	case KCancel:
		return domain.ActCancel, true
	case KRefund:
		return domain.ActRefund, true
	}
	return domain.Action{}, false
}

// CustomerRec is a new customer's attributes.
type CustomerRec struct {
	Name, Email, Phone, Segment, Region, Country, City string
}

// Patch is a customer attribute change; nil fields are unchanged.
type Patch struct {
	Segment, Region, Country, City *string
}

// Item is one order line: a product (catalogue index) and a quantity.
type Item struct {
	Product  int
	Quantity int
}

// Event is one command of the workload at simulated time At.
type Event struct {
	Kind     Kind
	At       time.Time
	Customer int          // customer index: KCustomer, KCustomerUpdate, KOrder
	Order    int          // order index: KOrder and lifecycle events
	New      *CustomerRec // KCustomer
	Patch    *Patch       // KCustomerUpdate
	Campaign int          // KOrder: campaign index, -1 for none
	Items    []Item       // KOrder
}

type pending struct {
	ev  Event
	seq uint64
}

type evHeap []pending

func (h evHeap) Len() int { return len(h) }
func (h evHeap) Less(i, j int) bool {
	if !h[i].ev.At.Equal(h[j].ev.At) {
		return h[i].ev.At.Before(h[j].ev.At)
	}
	return h[i].seq < h[j].seq
}
func (h evHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *evHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type custState struct {
	region, country, city, segment string
	orders                         int
	regionIdx                      int
}

// Generator produces a deterministic workload. It is not safe for
// concurrent use.
type Generator struct {
	p     Params
	rng   *rand.Rand
	cat   Catalogue
	zipf  *rand.Zipf
	perm  []int // popularity rank -> product index
	heap  evHeap
	seq   uint64
	custs []custState
	wsum  *fenwick
	cw    []float64 // purchase propensity per customer

	signups  []time.Time // sorted signup times of customers not yet created
	nextCust int

	baseRate, maxRate float64 // orders per simulated second
	nextOrderAt       time.Time
	ordersEmitted     int
	lastOrderAt       time.Time
	done              bool
	Dropped           int // lifecycle/update events after the last order, left in flight
}

// NewGenerator builds the catalogue and prepares the event stream.
func NewGenerator(p Params) (*Generator, error) {
	if err := p.defaults(); err != nil {
		return nil, err
	}
	g := &Generator{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
	g.buildCatalogue()
	g.zipf = rand.NewZipf(g.rng, 1.15, 2, uint64(p.Products-1))
	g.perm = g.rng.Perm(p.Products)
	g.custs = make([]custState, 0, p.Customers)
	g.cw = make([]float64, p.Customers)
	g.wsum = newFenwick(p.Customers)
	for i := range g.cw {
		// Pareto(alpha=1.3): a few customers buy very often (repeat purchasers).
		g.cw[i] = math.Min(1/math.Pow(1-g.rng.Float64(), 1/1.3), 200)
	}
	// 30 % of the customers signed up during the two years before Start,
	// the rest sign up uniformly over the span.
	initial := int(math.Ceil(float64(p.Customers) * 0.3))
	if p.Customers > 0 && initial == 0 {
		initial = 1
	}
	g.signups = make([]time.Time, p.Customers)
	for i := range g.signups {
		var off float64
		if i < initial {
			off = -g.rng.Float64() * 2 * 365 * 86400
		} else {
			off = g.rng.Float64() * p.Span.Seconds()
		}
		g.signups[i] = simTime(p.Start, off)
	}
	sort.Slice(g.signups, func(i, j int) bool { return g.signups[i].Before(g.signups[j]) })
	g.baseRate = float64(p.Orders) / p.Span.Seconds()
	maxUplift := 1.0
	for _, c := range g.cat.Campaigns {
		maxUplift = math.Max(maxUplift, c.Uplift)
	}
	g.maxRate = g.baseRate * 1.6 * 1.25 * maxUplift
	g.nextOrderAt = p.Start
	if p.Orders > 0 {
		g.advanceOrder()
	}
	return g, nil
}

// Catalogue returns the products and campaigns.
func (g *Generator) Catalogue() *Catalogue { return &g.cat }

// Params returns the effective parameters.
func (g *Generator) Params() Params { return g.p }

func simTime(origin time.Time, seconds float64) time.Time {
	return origin.Add(time.Duration(seconds * float64(time.Second))).Truncate(time.Microsecond)
}

func pick[T any](r *rand.Rand, ws []weighted[T]) T {
	total := 0.0
	for _, w := range ws {
		total += w.w
	}
	x := r.Float64() * total
	for _, w := range ws {
		if x < w.w {
			return w.v
		}
		x -= w.w
	}
	return ws[len(ws)-1].v
}

func (g *Generator) buildCatalogue() {
	p, r := g.p, g.rng
	g.cat.CreatedAt = p.Start.Add(-2 * 365 * 24 * time.Hour).Add(-24 * time.Hour)
	skuPrefix := ""
	if p.Namespace != "" {
		skuPrefix = strings.ToUpper(p.Namespace) + "-"
	}
	for i := 0; i < p.Products; i++ {
		c := pick(r, categories)
		price := c.basePrice * math.Exp(r.NormFloat64()*0.6)
		cents := int64(math.Max(1, math.Round(price))) * 100
		cents -= []int64{1, 1, 1, 51, 5, 0}[r.IntN(6)] // .99, .49, .95, .00 endings
		if cents <= 0 {
			cents = 99
		}
		g.cat.Products = append(g.cat.Products, ProductRec{
			SKU:      fmt.Sprintf("%s%s-%05d", skuPrefix, c.prefix, i+1),
			Name:     adjectives[r.IntN(len(adjectives))] + " " + c.nouns[r.IntN(len(c.nouns))],
			Category: c.name,
			Price:    domain.Money(cents),
			Currency: "USD",
		})
	}
	codeSuffix := ""
	if p.Namespace != "" {
		codeSuffix = "-" + strings.ToUpper(p.Namespace)
	}
	for i := 0; i < p.Campaigns; i++ {
		theme := campaignThemes[r.IntN(len(campaignThemes))]
		start := simTime(p.Start, r.Float64()*p.Span.Seconds()).Truncate(time.Hour)
		days := 3 + r.IntN(12)
		pct := domain.Percent([]int64{500, 1000, 1500, 2000, 2500, 3000}[r.IntN(6)])
		g.cat.Campaigns = append(g.cat.Campaigns, CampaignRec{
			Code:     fmt.Sprintf("%s%d-%02d%s", theme, pct/100, i+1, codeSuffix),
			Name:     fmt.Sprintf("%s %s%% off", strings.ToLower(theme), pct),
			StartsAt: start,
			EndsAt:   start.Add(time.Duration(days) * 24 * time.Hour),
			Percent:  pct,
			Uplift:   1.3 + r.Float64()*1.2,
		})
	}
}

// rate is the order arrival rate (per simulated second) at t: a daily
// cycle peaking in the evening, busier weekends, campaign uplift.
func (g *Generator) rate(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	diurnal := 1 + 0.6*math.Sin((h-14)/24*2*math.Pi)
	weekly := 1.0
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		weekly = 1.25
	}
	uplift := 1.0
	for _, c := range g.cat.Campaigns {
		if domain.Active(c.StartsAt, c.EndsAt, t) {
			uplift = math.Max(uplift, c.Uplift)
		}
	}
	return g.baseRate * diurnal * weekly * uplift
}

// advanceOrder draws the next order arrival by thinning a Poisson process.
func (g *Generator) advanceOrder() {
	t := g.nextOrderAt
	for {
		t = t.Add(time.Duration(g.rng.ExpFloat64() / g.maxRate * float64(time.Second)))
		if g.rng.Float64()*g.maxRate <= g.rate(t) {
			g.nextOrderAt = t.Truncate(time.Microsecond)
			return
		}
	}
}

func (g *Generator) schedule(ev Event) {
	g.seq++
	heap.Push(&g.heap, pending{ev: ev, seq: g.seq})
}

func after(t time.Time, seconds float64) time.Time {
	if seconds < 1 {
		seconds = 1
	}
	return simTime(t, seconds)
}

const (
	minute = 60.0
	hour   = 3600.0
	day    = 86400.0
)

// Next returns the next event in simulated time order; false at the end.
func (g *Generator) Next() (Event, bool) {
	for !g.done {
		// Candidates: the next signup, the next order, the next scheduled event.
		var candidate int // 0 signup, 1 order, 2 heap
		best := time.Time{}
		have := false
		if g.nextCust < len(g.signups) {
			best, candidate, have = g.signups[g.nextCust], 0, true
		}
		if g.ordersEmitted < g.p.Orders && (!have || g.nextOrderAt.Before(best)) {
			best, candidate, have = g.nextOrderAt, 1, true
		}
		if len(g.heap) > 0 && (!have || g.heap[0].ev.At.Before(best)) {
			best, candidate, have = g.heap[0].ev.At, 2, true
		}
		if !have {
			g.done = true
			break
		}
		switch candidate {
		case 0:
			return g.newCustomer(), true
		case 1:
			return g.newOrder(), true
		default:
			pe := heap.Pop(&g.heap).(pending)
			if g.ordersEmitted >= g.p.Orders && pe.ev.At.After(g.lastOrderAt) {
				// The run ends with the last order; later lifecycle steps stay in flight.
				g.Dropped++
				continue
			}
			if ev, ok := g.fire(pe.ev); ok {
				return ev, true
			}
		}
	}
	return Event{}, false
}

func (g *Generator) newCustomer() Event {
	r := g.rng
	i := g.nextCust
	at := g.signups[i]
	g.nextCust++
	regIdx := 0
	reg := pick(r, regions)
	for j, rr := range regions {
		if rr.v.name == reg.name {
			regIdx = j
		}
	}
	c := pick(r, reg.countries)
	first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	domainName := "example.com"
	if g.p.Namespace != "" {
		domainName = g.p.Namespace + ".example.com"
	}
	rec := &CustomerRec{
		Name:    first + " " + last,
		Email:   strings.ToLower(fmt.Sprintf("%s.%s.%d@%s", first, last, i+1, domainName)),
		Segment: pick(r, segmentWeights),
		Region:  reg.name,
		Country: c.code,
		City:    pick(r, c.cities),
	}
	if r.Float64() < 0.8 {
		rec.Phone = fmt.Sprintf("+%d %03d %03d %04d", c.dial, 100+r.IntN(900), r.IntN(1000), r.IntN(10000))
	}
	g.custs = append(g.custs, custState{region: rec.Region, country: rec.Country, city: rec.City, segment: rec.Segment, regionIdx: regIdx})
	g.wsum.add(i, g.cw[i])
	// Some customers move once.
	if r.Float64() < 0.12 {
		g.schedule(Event{Kind: KCustomerUpdate, At: after(maxTime(at, g.p.Start), 30*day+r.Float64()*300*day), Customer: i})
	}
	return Event{Kind: KCustomer, At: at, Customer: i, New: rec}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (g *Generator) newOrder() Event {
	r := g.rng
	at := g.nextOrderAt
	idx := g.ordersEmitted
	g.ordersEmitted++
	g.lastOrderAt = at
	if g.ordersEmitted < g.p.Orders {
		g.advanceOrder()
	}
	cust := g.wsum.find(r.Float64() * g.wsum.total())
	if cust >= len(g.custs) { // float rounding at the top end
		cust = len(g.custs) - 1
	}
	cs := &g.custs[cust]
	cs.orders++
	// Loyal customers climb the tiers.
	if cs.orders == 4 || cs.orders == 12 || cs.orders == 30 {
		if r.Float64() < 0.35 {
			g.schedule(Event{Kind: KCustomerUpdate, At: after(at, hour+r.Float64()*3*day), Customer: cust, Patch: &Patch{}})
		}
	}
	campaign := -1
	for ci, c := range g.cat.Campaigns {
		if domain.Active(c.StartsAt, c.EndsAt, at) && (campaign < 0 || c.Percent > g.cat.Campaigns[campaign].Percent) {
			campaign = ci
		}
	}
	if campaign >= 0 && r.Float64() > 0.65 {
		campaign = -1 // not every order during a campaign uses its code
	}
	n := 1
	for n < 8 && r.Float64() < 0.45 {
		n++
	}
	items := make([]Item, 0, n)
	seen := map[int]bool{}
	for len(items) < n {
		prod := g.perm[g.zipf.Uint64()]
		if seen[prod] {
			if len(seen) >= g.p.Products {
				break
			}
			continue
		}
		seen[prod] = true
		q := 1
		switch x := r.Float64(); {
		case x < 0.75:
		case x < 0.92:
			q = 2
		case x < 0.97:
			q = 3
		default:
			q = 4 + r.IntN(3)
		}
		items = append(items, Item{Product: prod, Quantity: q})
	}
	// Lifecycle: 3 % cancelled before payment, the rest paid within minutes.
	if r.Float64() < 0.03 {
		g.schedule(Event{Kind: KCancel, At: after(at, r.ExpFloat64()*3*hour), Order: idx, Customer: cust})
	} else {
		g.schedule(Event{Kind: KPay, At: after(at, 5+r.ExpFloat64()*15*minute), Order: idx, Customer: cust})
	}
	return Event{Kind: KOrder, At: at, Customer: cust, Order: idx, Campaign: campaign, Items: items}
}

// fire completes a scheduled event and schedules the order's next step.
func (g *Generator) fire(ev Event) (Event, bool) {
	r := g.rng
	switch ev.Kind {
	case KCustomerUpdate:
		cs := &g.custs[ev.Customer]
		p := &Patch{}
		if ev.Patch != nil { // segment upgrade
			next, ok := domain.NextSegment(cs.segment)
			if !ok {
				return ev, false
			}
			cs.segment = next
			p.Segment = &next
		} else { // move: mostly within the country, sometimes abroad
			reg := regions[cs.regionIdx].v
			if r.Float64() < 0.3 {
				reg = pick(r, regions)
				for j, rr := range regions {
					if rr.v.name == reg.name {
						cs.regionIdx = j
					}
				}
				c := pick(r, reg.countries)
				cs.region, cs.country, cs.city = reg.name, c.code, pick(r, c.cities)
				region, country := cs.region, cs.country
				p.Region, p.Country = &region, &country
			} else {
				for _, c := range reg.countries {
					if c.v.code == cs.country {
						cs.city = pick(r, c.v.cities)
					}
				}
			}
			city := cs.city
			p.City = &city
		}
		ev.Patch = p
		return ev, true
	case KPay:
		if r.Float64() < 0.02 {
			g.schedule(Event{Kind: KCancel, At: after(ev.At, r.ExpFloat64()*8*hour), Order: ev.Order, Customer: ev.Customer})
		} else {
			g.schedule(Event{Kind: KShip, At: after(ev.At, 12*hour+r.ExpFloat64()*30*hour), Order: ev.Order, Customer: ev.Customer})
		}
	case KShip:
		if r.Float64() < 0.004 { // lost in transit
			g.schedule(Event{Kind: KRefund, At: after(ev.At, 10*day+r.ExpFloat64()*5*day), Order: ev.Order, Customer: ev.Customer})
		} else {
			days := regions[g.custs[ev.Customer].regionIdx].v.deliveryDays
			g.schedule(Event{Kind: KDeliver, At: after(ev.At, days*day*(0.6+0.4*r.Float64())+r.ExpFloat64()*1.5*day), Order: ev.Order, Customer: ev.Customer})
		}
	case KDeliver:
		if r.Float64() < 0.04 {
			g.schedule(Event{Kind: KRefund, At: after(ev.At, day+r.ExpFloat64()*7*day), Order: ev.Order, Customer: ev.Customer})
		}
	}
	return ev, true
}

// fenwick is a binary indexed tree of float64 weights for weighted draws
// among the customers created so far.
type fenwick struct{ t []float64 }

func newFenwick(n int) *fenwick { return &fenwick{t: make([]float64, n+1)} }

func (f *fenwick) add(i int, w float64) {
	for i++; i < len(f.t); i += i & -i {
		f.t[i] += w
	}
}

func (f *fenwick) prefix(i int) float64 { // sum of [0, i)
	s := 0.0
	for ; i > 0; i -= i & -i {
		s += f.t[i]
	}
	return s
}

func (f *fenwick) total() float64 { return f.prefix(len(f.t) - 1) }

// find returns the smallest index whose prefix sum exceeds x.
func (f *fenwick) find(x float64) int {
	pos := 0
	step := 1
	for step*2 < len(f.t) {
		step *= 2
	}
	for ; step > 0; step /= 2 {
		if pos+step < len(f.t) && f.t[pos+step] <= x {
			pos += step
			x -= f.t[pos]
		}
	}
	if pos >= len(f.t)-1 {
		pos = len(f.t) - 2
	}
	return pos
}
