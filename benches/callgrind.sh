#!/usr/bin/env bash
# User-space instructions per keep-alive request (`make bench-instr`): tern (release build)
# under valgrind's callgrind, warmed up, then counted over a fixed load of GET /1k.bin.
# Instruction counts do not depend on the machine's noise, so small optimisations show.
#
#   CLIENT=wrk (default): wrk -t1 -c64 for 4 s, a one-header request; divides by the
#                         responses wrk counted.
#   CLIENT=ab:            ab -k -c16 -n 20000, a four-header HTTP/1.0 request.
#   FLOOR=1:              profile benches/floor.rs (the reference responder) instead
#   ROUTES=1:             serve from a configuration of 3 virtual hosts and 20 routes (the
#                         request's Host names one of them), to price host and route matching
#   PORT=18090, BIN=target/release/tern
# Installs valgrind, wrk and apache2-utils when missing. Targets only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENT=${CLIENT:-wrk}
PORT=${PORT:-18090}
BIN=${BIN:-target/release/tern}

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v callgrind_annotate >/dev/null || need+=(valgrind)
command -v wrk >/dev/null || need+=(wrk)
command -v ab >/dev/null || need+=(apache2-utils)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
[ "$BIN" != target/release/tern ] || cargo build --release >&2
cmd=("$BIN" -l "127.0.0.1:$PORT")
if [ -n "${FLOOR:-}" ]; then
    floor=$(cargo bench --no-run --bench floor --message-format=json-render-diagnostics 2>/dev/null |
        grep -o '"executable":"[^"]*floor[^"]*"' | tail -1 | cut -d'"' -f4)
    cmd=("$floor" "127.0.0.1:$PORT")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-callgrind.XXXXXX")
PID=""
cleanup() {
    [ -z "$PID" ] || kill -TERM "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/root"
head -c 1024 /dev/urandom >"$WORK/root/1k.bin"

if [ -n "${FLOOR:-}" ]; then
    cmd+=("$WORK/root/1k.bin")
elif [ -n "${ROUTES:-}" ]; then
    # 3 hosts, 20 routes; the benchmark's Host (127.0.0.1) is the third host's alias.
    mkdir -p "$WORK/other"
    {
        echo 'root = "root"'
        for r in img css js fonts docs; do printf '[route."/%s/"]\nstatic = "other"\n' "$r"; done
        echo '[vhost."a.example"]'
        echo 'root = "other"'
        for r in img css js; do printf '[vhost."a.example".route."/%s/"]\nstatic = "other"\n' "$r"; done
        printf '[vhost."a.example".route."/about"]\nstatic = "root/1k.bin"\n'
        echo '[vhost."b.example"]'
        echo 'root = "root"'
        echo 'aliases = ["www.b.example", "*.b.example", "127.0.0.1", "localhost"]'
        [ -z "${NO_HEADERS:-}" ] && echo 'headers = { "X-Frame-Options" = "DENY" }'
        for r in img css js fonts static media downloads; do
            printf '[vhost."b.example".route."/%s/"]\nstatic = "other"\n' "$r"
        done
        printf '[vhost."b.example".route."/old/"]\nredirect = "https://b.example/new/"\n'
        printf '[vhost."b.example".route."/favicon.ico"]\nstatic = "root/1k.bin"\n'
        printf '[vhost."b.example".route."/robots.txt"]\nstatic = "root/1k.bin"\n'
    } >"$WORK/tern.toml"
    cmd+=(-c "$WORK/tern.toml")
else
    cmd+=("$WORK/root")
fi
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "${cmd[@]}" >"$WORK/server.log" 2>&1 &
PID=$!
URL="http://127.0.0.1:$PORT/1k.bin"
for _ in $(seq 100); do curl -s -o /dev/null "$URL" && break; sleep 0.2; done

if [ "$CLIENT" = ab ]; then
    ab -k -c 16 -n 2000 "$URL" >/dev/null 2>&1
    callgrind_control -z "$PID" >/dev/null 2>&1
    out=$(ab -k -c 16 -n 20000 "$URL" 2>&1)
    n=$(awk '/^Complete requests:/ {print $3}' <<<"$out")
    failed=$(awk '/^Failed requests:/ {print $3}' <<<"$out")
    [ "$failed" = 0 ] || { echo "callgrind.sh: ab reported $failed failed requests" >&2; exit 1; }
else
    wrk -t1 -c64 -d2s "$URL" >/dev/null
    callgrind_control -z "$PID" >/dev/null 2>&1
    n=$(wrk -t1 -c64 -d4s "$URL" | awk '/requests in/ {print $1}')
fi
callgrind_control -d "$PID" >/dev/null 2>&1
kill -TERM "$PID"
wait "$PID" 2>/dev/null || true
PID=""
dump=$(ls -t "$WORK"/cg.out.* | head -1)
total=$(callgrind_annotate --threshold=100 --auto=no "$dump" | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
echo "$(basename "${cmd[0]}" | sed 's/-[0-9a-f]*$//'), client $CLIENT: $n requests, $total instructions, $((total / n)) instructions/request"
if [ -n "${KEEP:-}" ]; then
    cp "$dump" "${KEEP}"
    echo "profile kept in $KEEP (callgrind_annotate $KEEP)"
fi
