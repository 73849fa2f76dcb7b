package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partsTTL is how long offsetLister trusts its list of the topics' partitions.
const partsTTL = 10 * time.Second

// offsetLister lists the last stable offsets of a fixed set of topics like
// kadm's ListCommittedOffsets, but from a partition list it refreshes every
// partsTTL (or after an error) instead of before every listing: the barrier
// lists them before every poll's apply while caught up, and kadm's metadata
// request doubled that round trip.
type offsetLister struct {
	cl      *kgo.Client
	adm     *kadm.Client
	topics  []string
	parts   map[string][]int32
	partsAt time.Time
}

func newOffsetLister(cl *kgo.Client, topics []string) *offsetLister {
	return &offsetLister{cl: cl, adm: kadm.NewClient(cl), topics: topics, parts: map[string][]int32{}}
}

// committed lists the last stable offsets (read_committed end offsets).
func (l *offsetLister) committed(ctx context.Context) (kadm.ListedOffsets, error) {
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = 1 // read_committed: the end offset is the LSO
	for _, topic := range l.topics {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range l.parts[topic] {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = -1 // latest
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	out := kadm.ListedOffsets{}
	var errs []error
	for _, sh := range l.cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			errs = append(errs, fmt.Errorf("broker %d: %w", sh.Meta.NodeID, sh.Err))
			continue
		}
		for _, t := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			if out[t.Topic] == nil {
				out[t.Topic] = map[int32]kadm.ListedOffset{}
			}
			for _, p := range t.Partitions {
				err := kerr.ErrorForCode(p.ErrorCode)
				out[t.Topic][p.Partition] = kadm.ListedOffset{Topic: t.Topic, Partition: p.Partition, Timestamp: p.Timestamp,
					Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Err: err}
				if err != nil {
					l.partsAt = time.Time{} // leadership or partitions may have changed
				}
			}
		}
	}
	if len(errs) > 0 {
		l.partsAt = time.Time{}
		return out, errors.Join(errs...)
	}
	return out, nil
}

// refresh reloads the partition lists when they are older than partsTTL.
func (l *offsetLister) refresh(ctx context.Context) error {
	if time.Since(l.partsAt) < partsTTL {
		return nil
	}
	md, err := l.adm.ListTopics(ctx, l.topics...)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	clear(l.parts)
	for _, t := range l.topics {
		d, ok := md[t]
		switch {
		case !ok:
			return fmt.Errorf("list partitions of %s: not in the metadata", t)
		case d.Err != nil:
			return fmt.Errorf("list partitions of %s: %w", t, d.Err)
		}
		for p := range d.Partitions {
			l.parts[t] = append(l.parts[t], p)
		}
	}
	l.partsAt = time.Now()
	return nil
}
