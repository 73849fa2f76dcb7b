#!/usr/bin/env bash
# The embedded ClickHouse engine: libchdb.so from the npm package
# @chdb/lib-linux-x64-gnu (pinned in env.sh), cached in .local/cache/chdb/<version>.
source "$(dirname "$0")/env.sh"
DEST="$(dirname "$ORDERFLOW_CHDB_LIB")"
if [[ -s $ORDERFLOW_CHDB_LIB ]]; then
  ln -sfn "$CHDB_NPM_VERSION/libchdb.so" "$CACHE/chdb/libchdb.so"
  say "libchdb.so $CHDB_NPM_VERSION cached at $ORDERFLOW_CHDB_LIB"; exit 0
fi
command -v npm >/dev/null || need_pkgs npm
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "fetching @chdb/lib-linux-x64-gnu@$CHDB_NPM_VERSION (about 170 MB) with npm pack"
(cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CHDB_NPM_VERSION" >/dev/null 2>"$tmp/npm.err") \
  || { cat "$tmp/npm.err" >&2; die "npm pack @chdb/lib-linux-x64-gnu@$CHDB_NPM_VERSION failed"; }
tar -xzf "$tmp"/*.tgz -C "$tmp" package/libchdb.so
mv "$tmp/package/libchdb.so" "$ORDERFLOW_CHDB_LIB.part" && mv "$ORDERFLOW_CHDB_LIB.part" "$ORDERFLOW_CHDB_LIB"
# a stable path for the default -chdb-lib (.local/cache/chdb/libchdb.so)
ln -sfn "$CHDB_NPM_VERSION/libchdb.so" "$CACHE/chdb/libchdb.so"
say "libchdb.so ready: $ORDERFLOW_CHDB_LIB"
