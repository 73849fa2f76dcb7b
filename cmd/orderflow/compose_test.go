package main

import (
	"flag"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/testenv"
)

// No Docker engine runs here, so this test is what keeps docker-compose.yml
// honest: services, images, ports and ORDERFLOW_* variables are checked
// against orderflow's own flags and defaults.

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestComposeMatchesDefaults(t *testing.T) {
	var cf composeFile
	readYAML(t, "docker-compose.yml", &cf)

	images := map[string]string{
		"postgres":   "postgres:17",
		"kafka":      "apache/kafka:4.1.",
		"clickhouse": "clickhouse/clickhouse-server:25.8",
		"prometheus": "prom/prometheus:",
		"grafana":    "grafana/grafana:",
	}
	for svc, prefix := range images {
		s, ok := cf.Services[svc]
		if !ok {
			t.Errorf("service %s missing", svc)
			continue
		}
		if !strings.HasPrefix(s.Image, prefix) {
			t.Errorf("service %s image %q, want %s*", svc, s.Image, prefix)
		}
	}
	if pg := cf.Services["postgres"]; !slices.Contains(pg.Command, "wal_level=logical") {
		t.Errorf("postgres must run with wal_level=logical, command %v", pg.Command)
	}

	_, defPort, _ := net.SplitHostPort(config.DefaultHTTPAddr)
	wantSubcommands := map[string]bool{"api": false, "capture": false, "transform": false, "migrate": false}
	for name, s := range cf.Services {
		if s.Build == nil {
			continue
		}
		if len(s.Command) == 0 {
			t.Errorf("orderflow service %s has no subcommand", name)
			continue
		}
		cmd, ok := commands[s.Command[0]]
		if !ok {
			t.Errorf("service %s runs unknown subcommand %q", name, s.Command[0])
			continue
		}
		wantSubcommands[s.Command[0]] = true
		var cfg config.Config
		env := func(k string) string { return s.Environment[k] }
		fs, loader, _ := cmd.flags(&cfg, env)
		// The services share one environment block, so a variable must be
		// read by some subcommand (a typo is caught), not necessarily by this one.
		for k := range s.Environment {
			if !anyCommandReads(k) {
				t.Errorf("service %s sets %s, which no orderflow subcommand reads", name, k)
			}
		}
		fs.SetOutput(discard{})
		if err := loader.Parse(&cfg, s.Command[1:]); err != nil {
			t.Errorf("service %s: its configuration does not validate: %v", name, err)
			continue
		}
		if cmd.serve {
			_, port, _ := net.SplitHostPort(cfg.HTTP.Addr)
			if port != defPort {
				t.Errorf("service %s listens on %s, want the default port %s", name, cfg.HTTP.Addr, defPort)
			}
		}
		if len(cfg.Kafka.Brokers) > 0 && cfg.Kafka.Brokers[0] != "kafka:9092" {
			t.Errorf("service %s: brokers %v, want kafka:9092", name, cfg.Kafka.Brokers)
		}
		if cfg.Postgres.URL != "" {
			u, _ := url.Parse(cfg.Postgres.URL)
			pg := cf.Services["postgres"].Environment
			pw, _ := u.User.Password()
			if u.Host != "postgres:5432" || u.User.Username() != pg["POSTGRES_USER"] || pw != pg["POSTGRES_PASSWORD"] || u.Path != "/"+pg["POSTGRES_DB"] {
				t.Errorf("service %s: ORDERFLOW_PG_URL %s does not match the postgres service", name, u.Redacted())
			}
		}
		if cfg.ClickHouse.Engine == "server" && cfg.ClickHouse.Addr != "clickhouse:9000" {
			t.Errorf("service %s: clickhouse addr %s, want clickhouse:9000", name, cfg.ClickHouse.Addr)
		}
	}
	for sub, seen := range wantSubcommands {
		if !seen {
			t.Errorf("no compose service runs `orderflow %s`", sub)
		}
	}

	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "deploy/prometheus/prometheus.yml", &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for name, s := range cf.Services {
		if s.Build == nil || len(s.Command) == 0 || commands[s.Command[0]] == nil || !commands[s.Command[0]].serve {
			continue
		}
		if !slices.Contains(targets, name+":"+defPort) {
			t.Errorf("prometheus does not scrape %s:%s", name, defPort)
		}
	}

	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			UID  string `yaml:"uid"`
		} `yaml:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/datasources.yml", &ds)
	types := map[string]bool{}
	for _, d := range ds.Datasources {
		types[d.Type] = true
	}
	if !types["grafana-clickhouse-datasource"] || !types["prometheus"] {
		t.Errorf("grafana data sources %v, want ClickHouse and Prometheus", types)
	}
}

type flagT = flag.Flag

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func anyCommandReads(env string) bool {
	for _, c := range commands {
		var cfg config.Config
		fs, _, _ := c.flags(&cfg, func(string) string { return "" })
		found := false
		fs.VisitAll(func(f *flagT) { found = found || config.EnvName(f.Name) == env })
		if found {
			return true
		}
	}
	return false
}
