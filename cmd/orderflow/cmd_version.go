package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/internal/config"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print the orderflow version and build information",
		setup: func(_ *config.Loader, _ *config.Config) runFunc {
			return func(_ context.Context, _ *errgroup.Group, e *Env, _ []string) error {
				rev := "unknown"
				if bi, ok := debug.ReadBuildInfo(); ok {
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" {
							rev = s.Value
						}
					}
				}
				_, err := fmt.Fprintf(e.Stdout, "orderflow commit %s %s %s/%s\n", rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return err
			}
		},
	})
}
