package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/config"
)

func init() {
	register(&command{
		name:     "topics",
		summary:  "list (or with -delete remove) the Kafka topics of a topic prefix, with record counts",
		sections: []config.Section{config.SecKafka},
		setup: func(l *config.Loader, _ *config.Config) runFunc {
			var del bool
			l.Bool(&del, "delete", false, "delete the prefix's topics (and nothing else)")
			return func(ctx context.Context, _ *errgroup.Group, e *Env, args []string) error {
				if len(args) > 0 {
					return usageErrorf("topics takes no arguments, got %q", strings.Join(args, " "))
				}
				opts, err := capture.KafkaClientOpts(e.Cfg.Kafka)
				if err != nil {
					return usageErrorf("kafka: %v", err)
				}
				cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(e.Cfg.Kafka.Brokers...))...)
				if err != nil {
					return err
				}
				defer cl.Close()
				adm := kadm.NewClient(cl)
				td, err := adm.ListTopics(ctx)
				if err != nil {
					return fmt.Errorf("list topics on %v: %w", e.Cfg.Kafka.Brokers, err)
				}
				prefix := e.Cfg.Kafka.TopicPrefix + "."
				var names []string
				for _, t := range td.Sorted() {
					if strings.HasPrefix(t.Topic, prefix) {
						names = append(names, t.Topic)
					}
				}
				sort.Strings(names)
				if del {
					if len(names) == 0 {
						fmt.Fprintf(e.Stdout, "no topics with prefix %s\n", prefix)
						return nil
					}
					resp, err := adm.DeleteTopics(ctx, names...)
					if err != nil {
						return fmt.Errorf("delete topics: %w", err)
					}
					for _, r := range resp.Sorted() {
						if r.Err != nil {
							return fmt.Errorf("delete %s: %w", r.Topic, r.Err)
						}
						fmt.Fprintf(e.Stdout, "deleted %s\n", r.Topic)
					}
					return nil
				}
				starts, err := adm.ListStartOffsets(ctx, names...)
				if err != nil {
					return fmt.Errorf("list start offsets: %w", err)
				}
				ends, err := adm.ListEndOffsets(ctx, names...)
				if err != nil {
					return fmt.Errorf("list end offsets: %w", err)
				}
				for _, n := range names {
					var records int64
					ends.Each(func(o kadm.ListedOffset) {
						if o.Topic == n {
							if s, ok := starts.Lookup(n, o.Partition); ok {
								records += o.Offset - s.Offset
							}
						}
					})
					fmt.Fprintf(e.Stdout, "%-48s %3d partitions  %12d offsets\n", n, len(td[n].Partitions), records)
				}
				return nil
			}
		},
	})
}
