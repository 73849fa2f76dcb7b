// Package dashboards holds the Grafana dashboards (business.json,
// pipeline.json), provisioned by deploy/grafana/provisioning from this
// directory (docker-compose mounts it at /var/lib/grafana/dashboards).
//
// business.json reads the ClickHouse query side through the data source
// uid orderflow-clickhouse (grafana-clickhouse-datasource) with the same
// definitions as the prebuilt reports in queries/ (FINAL, _is_deleted = 0;
// a sale is an order not cancelled or refunded; segment and region as of
// placement). pipeline.json reads the processes' metrics through the data
// source uid orderflow-prometheus.
//
// The test checks that the JSON is valid with unique uids and panel ids,
// that every ClickHouse panel's SQL, with Grafana's macros expanded, runs on
// the embedded engine against the schema and a fixed data set and returns
// rows, and that every PromQL expression names metrics (and labels) that
// orderflow's stages register.
package dashboards

import "embed"

// FS holds the dashboard JSON files.
//
//go:embed *.json
var FS embed.FS
