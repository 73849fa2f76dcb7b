package load

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/orderflow/orderflow/ingest/domain"
)

func streamHash(t *testing.T, p Params) (string, []Event) {
	t.Helper()
	g, err := NewGenerator(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%+v\n", *g.Catalogue())
	var evs []Event
	for {
		ev, ok := g.Next()
		if !ok {
			break
		}
		fmt.Fprintf(h, "%d %s %d %d %+v %d %v\n", ev.Kind, ev.At.Format("2006-01-02T15:04:05.999999"), ev.Customer, ev.Order, ev.New, ev.Campaign, ev.Items)
		if p := ev.Patch; p != nil {
			fmt.Fprintf(h, "%s %s %s %s\n", str(p.Segment), str(p.Region), str(p.Country), str(p.City))
		}
		evs = append(evs, ev)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), evs
}

func TestGeneratorDeterministicAndOrdered(t *testing.T) {
	p := Params{Seed: 42, Customers: 300, Orders: 2000, Products: 100, Campaigns: 6}
	a, evs := streamHash(t, p)
	b, _ := streamHash(t, p)
	if a != b {
		t.Fatal("same params, different event streams")
	}
	p.Seed = 43
	if c, _ := streamHash(t, p); c == a {
		t.Fatal("different seeds, same event stream")
	}

	status := map[int]string{}
	customers := map[int]bool{}
	orders := 0
	for i, ev := range evs {
		if i > 0 && ev.At.Before(evs[i-1].At) {
			t.Fatalf("event %d at %s is before event %d at %s", i, ev.At, i-1, evs[i-1].At)
		}
		switch ev.Kind {
		case KCustomer:
			customers[ev.Customer] = true
		case KCustomerUpdate:
			if !customers[ev.Customer] {
				t.Fatalf("update of customer %d before it exists", ev.Customer)
			}
		case KOrder:
			orders++
			if !customers[ev.Customer] {
				t.Fatalf("order %d for customer %d before the customer exists", ev.Order, ev.Customer)
			}
			if len(ev.Items) == 0 {
				t.Fatalf("order %d has no items", ev.Order)
			}
			status[ev.Order] = domain.StatusPlaced
		default:
			a, _ := ev.Kind.Action()
			if !a.Allowed(status[ev.Order]) {
				t.Fatalf("order %d: %s from %s", ev.Order, a.Name, status[ev.Order])
			}
			status[ev.Order] = a.To
		}
	}
	if orders != 2000 || len(customers) != 300 {
		t.Fatalf("%d orders, %d customers", orders, len(customers))
	}
}

func TestParamsValidation(t *testing.T) {
	for _, p := range []Params{
		{Orders: 10},                   // orders without customers
		{Customers: -1},                // negative
		{Customers: 1, Namespace: "A"}, // upper case namespace
		{Customers: 1, Namespace: "toolongname"},
	} {
		if _, err := NewGenerator(p); err == nil {
			t.Errorf("%+v: want an error", p)
		}
	}
}

func TestFenwick(t *testing.T) {
	f := newFenwick(5)
	for i, w := range []float64{1, 2, 3, 4} {
		f.add(i, w)
	}
	for x, want := range map[float64]int{0: 0, 0.99: 0, 1: 1, 2.9: 1, 3: 2, 5.9: 2, 6: 3, 9.99: 3} {
		if got := f.find(x); got != want {
			t.Errorf("find(%v) = %d, want %d", x, got, want)
		}
	}
	if f.total() != 10 {
		t.Fatalf("total %v", f.total())
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
