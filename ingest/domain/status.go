package domain

// Order statuses.
const (
	StatusPlaced    = "placed"
	StatusPaid      = "paid"
	StatusShipped   = "shipped"
	StatusDelivered = "delivered"
	StatusCancelled = "cancelled"
	StatusRefunded  = "refunded"
)

// Statuses are every order status.
var Statuses = []string{StatusPlaced, StatusPaid, StatusShipped, StatusDelivered, StatusCancelled, StatusRefunded}

// Action is a status-changing order command.
type Action struct {
	Name   string   // pay, ship, deliver, cancel, refund
	From   []string // statuses the order may be in
	To     string   // status afterwards
	Column string   // timestamp column set to the command's time
}

// The order status machine:
//
//	pay:     placed                  -> paid       (paid_at)
//	ship:    paid                    -> shipped    (shipped_at)
//	deliver: shipped                 -> delivered  (delivered_at)
//	cancel:  placed | paid           -> cancelled  (cancelled_at)
//	refund:  paid | shipped | delivered -> refunded (refunded_at)
//
// cancelled and refunded are terminal. Repeating a command on an order that
// is already in the target status is an illegal transition too (use an
// Idempotency-Key to retry safely).
var (
	ActPay     = Action{"pay", []string{StatusPlaced}, StatusPaid, "paid_at"}
	ActShip    = Action{"ship", []string{StatusPaid}, StatusShipped, "shipped_at"}
	ActDeliver = Action{"deliver", []string{StatusShipped}, StatusDelivered, "delivered_at"}
	ActCancel  = Action{"cancel", []string{StatusPlaced, StatusPaid}, StatusCancelled, "cancelled_at"}
	ActRefund  = Action{"refund", []string{StatusPaid, StatusShipped, StatusDelivered}, StatusRefunded, "refunded_at"}
)

// Actions in the order a batch applies them (each target is reachable only
// after the earlier ones).
var Actions = []Action{ActPay, ActShip, ActDeliver, ActCancel, ActRefund}

// Allowed reports whether the action may run on an order in status from.
func (a Action) Allowed(from string) bool { return member(from, a.From) }
