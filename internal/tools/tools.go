//go:build tools

// Package tools pins dependencies that later stages use, so go mod tidy keeps them.
package tools

import (
	_ "github.com/ClickHouse/clickhouse-go/v2"
	_ "github.com/ebitengine/purego"
	_ "github.com/jackc/pglogrepl"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "go.uber.org/goleak"
	_ "gopkg.in/yaml.v3"
)
