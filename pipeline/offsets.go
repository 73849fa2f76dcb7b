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

// partsTTL is how long offsetLister trusts its list of a topic's partitions.
const partsTTL = 10 * time.Second

// offsetLister lists partition offsets like kadm's ListCommittedOffsets and
// ListStartOffsets, but from a partition list it refreshes every partsTTL
// (or after an error) instead of before every listing. The barrier lists
// last stable offsets before every poll's apply; with kadm that was a
// metadata round trip and a listing each time, twice.
type offsetLister struct {
	cl      *kgo.Client
	adm     *kadm.Client
	parts   map[string][]int32
	partsAt time.Time
}

func newOffsetLister(cl *kgo.Client) *offsetLister {
	return &offsetLister{cl: cl, adm: kadm.NewClient(cl), parts: map[string][]int32{}}
}

// committed lists the last stable offsets (read_committed end offsets).
func (l *offsetLister) committed(ctx context.Context, topics []string) (kadm.ListedOffsets, error) {
	return l.list(ctx, 1, -1, topics)
}

// starts lists the log start offsets.
func (l *offsetLister) starts(ctx context.Context, topics []string) (kadm.ListedOffsets, error) {
	return l.list(ctx, 0, -2, topics)
}

func (l *offsetLister) list(ctx context.Context, isolation int8, timestamp int64, topics []string) (kadm.ListedOffsets, error) {
	if err := l.refresh(ctx, topics); err != nil {
		return nil, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	for _, topic := range topics {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range l.parts[topic] {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = timestamp
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

// refresh reloads the partition lists (of every topic listed so far) when
// they are older than partsTTL or lack one of topics.
func (l *offsetLister) refresh(ctx context.Context, topics []string) error {
	all := map[string]bool{}
	fresh := time.Since(l.partsAt) < partsTTL
	for _, t := range topics {
		if _, ok := l.parts[t]; !ok {
			fresh = false
		}
		all[t] = true
	}
	if fresh {
		return nil
	}
	for t := range l.parts {
		all[t] = true
	}
	names := make([]string, 0, len(all))
	for t := range all {
		names = append(names, t)
	}
	md, err := l.adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	clear(l.parts)
	l.partsAt = time.Time{}
	for _, t := range names {
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
