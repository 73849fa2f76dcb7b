#!/usr/bin/env bash
# Build the orderflow binary into .local/bin.
source "$(dirname "$0")/env.sh"
command -v go >/dev/null || die "Go is required (https://go.dev/doc/install); the version is in go.mod"
mkdir -p "$STACK/bin"
say "go build -o $STACK/bin/orderflow ./cmd/orderflow"
(cd "$ROOT" && go build -o "$STACK/bin/orderflow" ./cmd/orderflow)
