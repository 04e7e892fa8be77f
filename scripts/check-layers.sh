#!/usr/bin/env bash
# check-layers.sh — proves that no C file calls a named function of a higher layer.
#
# Reads the compiled objects (default build/*.o; `make compile` first): for each object, every
# undefined kx_* symbol it uses is matched to the object that defines it, and the two objects'
# layers (the table below) are compared. A call down or sideways (same layer) is fine; a call up
# is printed as
#     file.o -> symbol (defined in X.o, layer N > M)
# An object missing from the table is an error too, so a new file must be given its layer here.
# Exit status: 0 when clean, 1 on any violation or unplaced object, 2 on a usage problem.
#
# Layers, low to high:
#   0 ground       no I/O loop knowledge: helpers, pure parsers, config, logging, crypto, and the
#                  Redis clients (they own their hiredis connections, not client sockets)
#   1 transports   sockets and connections (and watch: the inotify descriptor of --watch)
#   2 protocols    HTTP, WebSocket, SSE framing and responses
#   3 routing      what a request is for: dispatch, routes, static files, channels
#   4 Lua bridge   the only files that include the Lua headers
#   5 main         the process: command line (main), boot, signals, drain (server), workers (supervisor)
set -euo pipefail

OBJDIR=${1:-build}

declare -A LAYER=(
    [common]=0 [home]=0 [mem]=0 [lua_alloc]=0 [buf]=0 [utf8]=0 [json_number]=0 [log]=0 [config]=0 [crypto]=0
    [http_guard]=0 [static_path]=0 [channel_name]=0 [cors]=0 [redis_url]=0 [session]=0 [ws_frame]=0 [ws_envelope]=0
    [redis]=0 [redis_script]=0 [pubsub]=0 [ratelimit]=0 [oauth]=0 [mcp_guard]=0 [prodcheck]=0 [metrics]=0
    [conn]=1 [listen]=1 [tls]=1 [watch]=1
    [http]=2 [ws]=2 [sse]=2 [response]=2
    [dispatch]=3 [router]=3 [static]=3 [channels]=3
    [lua_bridge]=4 [lua_api]=4 [lua_api_crypto]=4 [lua_api_ratelimit]=4 [lua_api_redis]=4
    [lua_api_util]=4 [lua_api_ws]=4 [lua_api_http]=4 [lua_api_mcp]=4 [lua_api_metrics]=4 [lua_api_json]=4 [config_file]=4 [lua_tool]=4
    [main]=5 [server]=5 [supervisor]=5
)

shopt -s nullglob
objs=("$OBJDIR"/*.o)
if [ ${#objs[@]} -eq 0 ]; then
    echo "check-layers: no objects in $OBJDIR/ (run make compile first)" >&2
    exit 2
fi

status=0
declare -A DEFINED_IN=()
for o in "${objs[@]}"; do
    name=$(basename "$o" .o)
    if [ -z "${LAYER[$name]+set}" ]; then
        echo "$name.o: not in the layer table of $0 (give it a layer)"
        status=1
    fi
    while read -r sym; do
        DEFINED_IN[$sym]=$name
    done < <(nm -g --defined-only "$o" | awk '$3 ~ /^kx_/ { print $3 }')
done

for o in "${objs[@]}"; do
    name=$(basename "$o" .o)
    [ -n "${LAYER[$name]+set}" ] || continue
    while read -r sym; do
        def=${DEFINED_IN[$sym]:-}
        if [ -z "$def" ] || [ -z "${LAYER[$def]+set}" ]; then continue; fi
        if [ "${LAYER[$def]}" -gt "${LAYER[$name]}" ]; then
            echo "$name.o -> $sym (defined in $def.o, layer ${LAYER[$def]} > ${LAYER[$name]})"
            status=1
        fi
    done < <(nm -u "$o" | awk '$2 ~ /^kx_/ { print $2 }' | sort -u)
done

if [ "$status" -eq 0 ]; then echo "check-layers: no upward calls in $OBJDIR/*.o"; fi
exit "$status"
