// Package load is the workload generator behind `orderflow load`.
//
// Generator turns a seed into a catalogue (products, campaigns) and a
// stream of commands in simulated-time order: customer signups (30 % before
// the first order, the rest over the span), orders arriving as a Poisson
// process with a daily and weekly cycle and campaign uplift, Zipf product
// popularity, Pareto-distributed purchase propensity (repeat purchasers),
// skewed segments and regions, order lifecycles with realistic delays
// (paid within minutes, shipped in about a day, delivered in region-dependent
// days; about 3 % cancelled before and 2 % after payment, about 4 % refunded),
// segment upgrades of loyal customers and occasional moves. The same Params
// give the same stream on every machine.
//
// Two paths apply the stream:
//   - Direct (RunDirect) writes batches straight to PostgreSQL, one
//     transaction per batch, with the command API's rules (ingest/domain)
//     and the simulated clock's timestamps, so a seed reproduces identical
//     tables on a fresh (or -truncate'd) database; Checksums proves it.
//   - HTTP (RunHTTP) sends every command through the command API with an
//     Idempotency-Key, retrying transport errors and 5xx; a customer's
//     commands, and an order's, are sent in order by one worker.
//
// Both run open loop at a fixed --rate of orders per second (or as fast
// as possible), stop at --duration, draw a progress line on a terminal and
// end with a Summary.
package load
