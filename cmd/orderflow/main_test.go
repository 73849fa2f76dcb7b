package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runMain(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	code, out, _ := runMain("--help")
	if code != exitOK || !strings.Contains(out, "Subcommands:") {
		t.Fatalf("--help: code %d, output %q", code, out)
	}
	for name := range commands {
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("--help does not list %s", name)
		}
		code, out, errOut := runMain(name, "--help")
		if code != exitOK {
			t.Errorf("%s --help: exit %d, stderr %q", name, code, errOut)
		}
		if !strings.Contains(out, "Usage: orderflow "+name) || !strings.Contains(out, "-log-level") {
			t.Errorf("%s --help prints no usage: %q", name, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	code, _, errOut := runMain("no-such-command")
	if code != exitUsage || !strings.Contains(errOut, `unknown subcommand "no-such-command"`) {
		t.Fatalf("unknown subcommand: code %d, stderr %q", code, errOut)
	}
	for name := range commands {
		code, _, errOut := runMain(name, "-log-level", "shouty")
		if code != exitUsage || !strings.Contains(errOut, "-log-level") {
			t.Errorf("%s -log-level shouty: code %d, stderr %q", name, code, errOut)
		}
	}
	code, _, errOut = runMain("doctor", "-kafka-brokers", "nohostport")
	if code != exitUsage || !strings.Contains(errOut, "invalid -kafka-brokers") {
		t.Fatalf("bad broker: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runMain("transform", "-transform-backlog-max-rows", "0")
	if code != exitUsage || !strings.Contains(errOut, "-transform-backlog-max-rows") {
		t.Fatalf("transform -transform-backlog-max-rows 0: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runMain("doctor", "-no-such-flag")
	if code != exitUsage || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("unknown flag: code %d, stderr %q", code, errOut)
	}
}
