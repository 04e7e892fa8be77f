#!/usr/bin/env bash
# `make run`: serve the example app (./app with ./config.lua) on http://localhost:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./keryx start "$@"
