#!/usr/bin/env bash
# `make run` / `make dev`: serve the example app (./app with ./config.lua) on
# http://localhost:8080 (`make dev` adds --watch: edits reload without a restart).
# When nothing answers at REDIS_URL (default redis://127.0.0.1:6379/0) and it points at this
# machine, a redis-server of its own is started for the session and stopped with keryx. Its data
# lives in .keryx-dev/redis (an append-only file), so users and sessions survive a restart;
# `make clean` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
hostport="${url#redis://}"
hostport="${hostport#*@}"
hostport="${hostport%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=6379

redis_pid=""
if ! redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then
  case "$host" in
    127.0.0.1|localhost|::1)
      data_dir="$PWD/.keryx-dev/redis"
      mkdir -p "$data_dir"
      echo "make run: no Redis at $host:$port — starting redis-server (data in $data_dir)" >&2
      redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly yes --daemonize no \
        --dir "$data_dir" >/dev/null &
      redis_pid=$!
      for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
      ;;
    *) echo "make run: Redis at $host:$port does not answer; keryx will retry in the background" >&2 ;;
  esac
fi

if [ -n "$redis_pid" ]; then
  trap 'kill "$redis_pid" 2>/dev/null || true' EXIT
  ./keryx start "$@"
else
  exec ./keryx start "$@"
fi
