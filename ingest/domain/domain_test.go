package domain

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseMoney(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Money
		ok   bool
	}{
		{"0", 0, true}, {"12", 1200, true}, {"12.3", 1230, true}, {"12.34", 1234, true}, {"-1.50", -150, true},
		{"12.345", 0, false}, {"1e3", 0, false}, {"", 0, false}, {".5", 0, false}, {"5.", 0, false}, {"abc", 0, false}, {"1,5", 0, false},
		{"9999999999.99", MaxMoney, true}, {"99999999999999999999", 0, false},
	} {
		got, err := ParseMoney(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseMoney(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestMoneyJSON(t *testing.T) {
	var m struct{ P Money }
	for in, want := range map[string]Money{`{"P":"19.99"}`: 1999, `{"P":19.99}`: 1999, `{"P":5}`: 500} {
		if err := json.Unmarshal([]byte(in), &m); err != nil || m.P != want {
			t.Errorf("%s -> %d, %v", in, m.P, err)
		}
	}
	for _, in := range []string{`{"P":"19.999"}`, `{"P":true}`, `{"P":null}`, `{"P":"x"}`, `{"P":1e2}`} {
		if err := json.Unmarshal([]byte(in), &m); err == nil {
			t.Errorf("%s: want an error", in)
		}
	}
	b, _ := json.Marshal(struct{ P Money }{-5})
	if string(b) != `{"P":"-0.05"}` {
		t.Errorf("marshal -5 cents = %s", b)
	}
}

func TestPrice(t *testing.T) {
	for _, tt := range []struct {
		name             string
		lines            []Line
		pct              Percent
		sub, disc, total Money
		lineDisc         []Money
	}{
		{"no campaign", []Line{{UnitPrice: 1999, Quantity: 3}, {UnitPrice: 500, Quantity: 1}}, 0, 6497, 0, 6497, []Money{0, 0}},
		{"15 % rounds half up per line", []Line{{UnitPrice: 1999, Quantity: 3}, {UnitPrice: 500, Quantity: 1}}, 1500, 6497, 975, 5522, []Money{900, 75}},
		{"half cent rounds up", []Line{{UnitPrice: 1, Quantity: 1}}, 5000, 1, 1, 0, []Money{1}},
		{"12.5 %", []Line{{UnitPrice: 999, Quantity: 1}}, 1250, 999, 125, 874, []Money{125}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tot, err := Price(tt.lines, tt.pct)
			if err != nil {
				t.Fatal(err)
			}
			if tot.Subtotal != tt.sub || tot.Discount != tt.disc || tot.Total != tt.total {
				t.Fatalf("totals %+v, want %d/%d/%d", tot, tt.sub, tt.disc, tt.total)
			}
			for i, l := range tt.lines {
				if l.Discount != tt.lineDisc[i] {
					t.Errorf("line %d discount %d, want %d", i, l.Discount, tt.lineDisc[i])
				}
			}
		})
	}
	if _, err := Price([]Line{{UnitPrice: 100, Quantity: 0}}, 0); err == nil {
		t.Error("zero quantity priced")
	}
	if _, err := Price([]Line{{UnitPrice: MaxMoney, Quantity: 2}}, 0); err == nil {
		t.Error("overflowing subtotal priced")
	}
}

func TestStatusMachine(t *testing.T) {
	// The documented machine, exhaustively.
	allowed := map[string][]string{
		"pay": {StatusPlaced}, "ship": {StatusPaid}, "deliver": {StatusShipped},
		"cancel": {StatusPlaced, StatusPaid}, "refund": {StatusPaid, StatusShipped, StatusDelivered},
	}
	for _, a := range Actions {
		for _, from := range Statuses {
			want := false
			for _, s := range allowed[a.Name] {
				want = want || s == from
			}
			if a.Allowed(from) != want {
				t.Errorf("%s from %s: allowed=%v, want %v", a.Name, from, a.Allowed(from), want)
			}
		}
	}
	for _, terminal := range []string{StatusCancelled, StatusRefunded} {
		for _, a := range Actions {
			if a.Allowed(terminal) {
				t.Errorf("%s is terminal but %s is allowed", terminal, a.Name)
			}
		}
	}
}

func TestValidateCustomer(t *testing.T) {
	s := func(v string) *string { return &v }
	ok := CustomerFields{Name: s("Ada"), Email: s("ada@example.com"), Segment: s("gold"), Region: s("europe"), Country: s("GB"), City: s("London")}
	if errs := ValidateCustomer(ok, true); len(errs) != 0 {
		t.Fatalf("valid customer rejected: %v", errs)
	}
	for _, tt := range []struct {
		name   string
		mutate func(*CustomerFields)
		create bool
		ptr    string
		reason string
	}{
		{"missing email", func(c *CustomerFields) { c.Email = nil }, true, "/email", ReasonRequired},
		{"bad email", func(c *CustomerFields) { c.Email = s("Ada <ada@example.com>") }, true, "/email", ReasonFormat},
		{"blank name", func(c *CustomerFields) { c.Name = s("  ") }, true, "/name", ReasonLength},
		{"bad segment", func(c *CustomerFields) { c.Segment = s("vip") }, false, "/segment", ReasonEnum},
		{"bad region", func(c *CustomerFields) { c.Region = s("EU") }, false, "/region", ReasonEnum},
		{"lower-case country", func(c *CustomerFields) { c.Country = s("gb") }, false, "/country", ReasonFormat},
		{"bad phone", func(c *CustomerFields) { c.Phone = s("call me") }, false, "/phone", ReasonFormat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			errs := ValidateCustomer(c, tt.create)
			if len(errs) != 1 || errs[0].Pointer != tt.ptr || errs[0].Reason != tt.reason {
				t.Fatalf("errors %+v, want one at %s (%s)", errs, tt.ptr, tt.reason)
			}
		})
	}
	if errs := ValidateCustomer(CustomerFields{Segment: s("gold")}, false); len(errs) != 0 {
		t.Fatalf("partial update rejected: %v", errs)
	}
}

func TestActiveWindowIsHalfOpen(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	for at, want := range map[time.Time]bool{start.Add(-time.Nanosecond): false, start: true, end.Add(-time.Microsecond): true, end: false} {
		if Active(start, end, at) != want {
			t.Errorf("Active at %s = %v", at, !want)
		}
	}
}
