#!/usr/bin/env bash
# make lint: gofmt and go vet.
source "$(dirname "$0")/env.sh"
cd "$ROOT"
say "gofmt -l"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null; find . -name '*.go' -not -path './.local/*' -newer go.mod 2>/dev/null) 2>/dev/null | sort -u)
[[ -z $bad ]] || die "not gofmt'ed: $bad (run make fmt)"
say "go vet ./..."
go vet ./...
