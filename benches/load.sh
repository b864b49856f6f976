#!/usr/bin/env bash
# Load benchmark (`make bench-load`): tern against nginx, lighttpd and h2o on one generated
# document root, each with one worker and production settings, pinned to one CPU while the
# load generator runs on another. Servers take turns (A B C D, A B C D, ...) so that drift of
# the machine is shared. Every run is bounded in time or count and only targets 127.0.0.1.
#
# Output: bench-out/report.md (markdown tables: per server req/s, MiB/s, server CPU µs per
# request, and tern's ratio to each anchor and to the best one), bench-out/raw.tsv (every
# measurement of every round) and bench-out/logs/ (server and client output).
#
# Environment:
#   BENCH_SECONDS=5       length of each measured run
#   BENCH_ROUNDS=2        rounds of A B C D turns per throughput scenario
#   BENCH_COUNT_ROUNDS=1  rounds of the counting scenarios (idle-10k, syscalls, allocs), whose
#                         results do not depend on the machine's speed
#   BENCH_WARMUP=1        seconds of warm-up before each measured run
#   BENCH_ONLY=a,b        scenarios to run (names below); default all
#   BENCH_SERVERS="tern nginx lighttpd h2o floor"
#                         floor is benches/floor.rs, a reference and not an anchor: the cheapest
#                         possible responder (one precomputed write per request head), run in the
#                         keep-alive /1k.bin scenarios to show how much of a request is the kernel's
#   BENCH_IDLE_CONNS=10000, BENCH_SYSCALL_REQUESTS=20000, BENCH_ALLOC_REQUESTS=100000
#   BENCH_SERVER_CPU=0, BENCH_CLIENT_CPU=1, BENCH_PORT_BASE=18000, BENCH_OUT=bench-out
#   BENCH_UPSTREAM_CPU=$BENCH_SERVER_CPU  where proxy-ka-1k's shared upstream (floor) runs
#   BENCH_NO_INSTALL=1    never apt-get install missing tools (skip what is missing)
#   BENCH_KEEP=1          keep the temporary document root and configs
set -euo pipefail
export LC_ALL=C
export PATH="$PATH:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

DURATION=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
COUNT_ROUNDS=${BENCH_COUNT_ROUNDS:-1}
WARMUP=${BENCH_WARMUP:-1}
read -r -a SERVERS <<<"${BENCH_SERVERS:-tern nginx lighttpd h2o floor}"
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
SYSCALL_REQUESTS=${BENCH_SYSCALL_REQUESTS:-20000}
ALLOC_REQUESTS=${BENCH_ALLOC_REQUESTS:-100000}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
UPSTREAM_CPU=${BENCH_UPSTREAM_CPU:-$SERVER_CPU}
PORT_BASE=${BENCH_PORT_BASE:-18000}
OUT=${BENCH_OUT:-$REPO/bench-out}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
CARGO=${CARGO:-cargo}

# name | kind | description | client command (for the report; PORT and S filled in)
SCENARIO_TABLE="
ka-1k-64|wrk|keep-alive, 1 KiB file, 64 connections|wrk -t1 -c64 /1k.bin
ka-1k-1000|wrk|keep-alive, 1 KiB file, 1,000 connections|wrk -t1 -c1000 /1k.bin
ka-files|wrk|keep-alive, 1,000 different 512-byte files in turn, 64 connections|wrk -t1 -c64 -s files.lua
pipeline-16|wrk|keep-alive, 1 KiB file, 16 requests pipelined per write, 64 connections|wrk -t1 -c64 -s pipeline.lua
new-conn|ab|a new connection per request (HTTP/1.0, no keep-alive), 32 concurrent|ab -r -c32 -t S /1k.bin
ka-16k|wrk|keep-alive, 16 KiB file, 64 connections|wrk -t1 -c64 /16k.bin
ka-1m|wrk|keep-alive, 1 MiB file, 16 connections|wrk -t1 -c16 /1m.bin
big-100m|wrk|one 100 MiB download at a time, repeated|wrk -t1 -c1 /100m.bin
tls-ka-1k|wrk|HTTPS keep-alive, 1 KiB file, 64 connections (TLS 1.3, X25519, ECDSA P-256)|wrk -t1 -c64 https:// /1k.bin
tls-new|ab|HTTPS, a new connection per request: one full TLS 1.3 handshake each, 32 concurrent|ab -f TLS1.3 -r -c32 -t S https:// /1k.bin
tls-resume|stime|HTTPS, a new connection per request, each resuming a session (TLS 1.3 ticket), 8 clients|openssl s_time -reuse -www /1k.bin, 8 at once
tls-100m|wrk|HTTPS, one 100 MiB download at a time, repeated|wrk -t1 -c1 https:// /100m.bin
proxy-ka-1k|wrk|keep-alive, 1 KiB through each server's reverse proxy to one shared upstream (benches/floor.rs), 64 connections|wrk -t1 -c64 /1k.bin (proxied)
proxy-100m|wrk|one 100 MiB download at a time through each server's reverse proxy to one shared upstream (a tern serving the files), repeated|wrk -t1 -c1 /100m.bin (proxied)
cgi-sh|ab|a trivial /bin/sh CGI script, a new connection per request (HTTP/1.0), 16 concurrent|ab -r -c16 -t S /cgi-bin/hello.sh
idle-10k|idle|idle keep-alive connections after one request each: server RSS growth|benches/idle_conns.rs
syscalls|strace|system calls per request, keep-alive 1 KiB, under strace -c -f|ab -k -c64 -n N /1k.bin
allocs|allocs|heap allocations per request, keep-alive 1 KiB (tern --features alloc-count)|ab -k -c64 -n N /1k.bin
"
ALL_SCENARIOS=()
declare -A KIND DESC CMD
while IFS='|' read -r name kind desc cmd; do
    [ -n "$name" ] || continue
    ALL_SCENARIOS+=("$name")
    KIND[$name]=$kind
    DESC[$name]=$desc
    CMD[$name]=$cmd
done <<<"$SCENARIO_TABLE"

SCENARIOS=()
if [ -n "${BENCH_ONLY:-}" ]; then
    IFS=',' read -r -a wanted <<<"$BENCH_ONLY"
    for w in "${wanted[@]}"; do
        if [ -z "${KIND[$w]:-}" ]; then
            echo "load.sh: unknown scenario '$w'; known: ${ALL_SCENARIOS[*]}" >&2
            exit 2
        fi
    done
    for s in "${ALL_SCENARIOS[@]}"; do
        for w in "${wanted[@]}"; do [ "$s" = "$w" ] && SCENARIOS+=("$s"); done
    done
else
    SCENARIOS=("${ALL_SCENARIOS[@]}")
fi
for s in "${SERVERS[@]}"; do
    case $s in tern | nginx | lighttpd | h2o | floor) ;; *)
        echo "load.sh: unknown server '$s'" >&2
        exit 2
        ;;
    esac
done

log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing (a fresh CI machine may have none of them).

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
POLICY_RC_CREATED=""

install_missing() {
    local need=()
    command -v wrk >/dev/null || need+=(wrk)
    command -v ab >/dev/null || need+=(apache2-utils)
    command -v nginx >/dev/null || need+=(nginx)
    command -v lighttpd >/dev/null || need+=(lighttpd)
    command -v h2o >/dev/null || need+=(h2o)
    # lighttpd's TLS module (the HTTPS scenarios).
    [ -e /usr/lib/lighttpd/mod_openssl.so ] || need+=(lighttpd-mod-openssl)
    command -v openssl >/dev/null || need+=(openssl)
    command -v strace >/dev/null || need+=(strace)
    command -v curl >/dev/null || need+=(curl)
    command -v taskset >/dev/null || need+=(util-linux)
    [ ${#need[@]} -gt 0 ] || return 0
    if [ -n "${BENCH_NO_INSTALL:-}" ]; then
        log "missing (BENCH_NO_INSTALL set, not installing): ${need[*]}"
        return 0
    fi
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The server packages would start their system services (port 80) on install: a
    # policy-rc.d that says "no" keeps them stopped, as in container images.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    $SUDO apt-get update -q >&2 || true
    if ! $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >&2; then
        # A package may be missing from this release of Debian: install the rest one by
        # one, and skip the servers that are not there.
        local p
        for p in "${need[@]}"; do
            $SUDO apt-get install -y -q --no-install-recommends "$p" >&2 || log "could not install $p"
        done
    fi
    if [ -n "$POLICY_RC_CREATED" ]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=""
    fi
}

# ---------------------------------------------------------------------------------------------
# Processes started here; the exit trap stops exactly these, by PID.

STARTED=()
RUN=""
cleanup() {
    local p
    for p in "${STARTED[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.2
    for p in "${STARTED[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ -n "$POLICY_RC_CREATED" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "$RUN" ] && [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() { # PID: no longer ours to stop
    local keep=() p
    for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
# Setup: tools, descriptor limit, builds, document root.

install_missing
for s in "${SERVERS[@]}"; do
    if ! command -v "$s" >/dev/null && [ "$s" != tern ] && [ "$s" != floor ]; then
        log "skipping $s: not installed"
        SERVERS=("${SERVERS[@]/$s/}")
    fi
done
read -r -a SERVERS <<<"${SERVERS[*]}"
# The servers tern is compared with: all but tern itself and the floor reference.
ANCHORS=()
for s in "${SERVERS[@]}"; do
    case $s in tern | floor) ;; *) ANCHORS+=("$s") ;; esac
done
for t in wrk ab curl taskset openssl; do
    command -v "$t" >/dev/null || { log "load.sh: $t is required"; exit 1; }
done

# Servers, wrk and the helper inherit this (the helper raises its own limit too).
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$NOFILE" -gt 65536 ] && NOFILE=65536
ulimit -n "$NOFILE"
ANCHOR_MAXCONN=$((NOFILE * 3 / 4))
[ "$ANCHOR_MAXCONN" -gt 20000 ] && ANCHOR_MAXCONN=20000
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$OUT/logs"
rm -f "$OUT"/logs/* "$OUT/raw.tsv"
RAW="$OUT/raw.tsv"
printf 'scenario\tserver\tround\tkey\tvalue\n' >"$RAW"
RUN=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench.XXXXXX")
chmod 755 "$RUN"
mkdir -p "$RUN/bin" "$RUN/srv"

log "building tern (cargo build --release)"
$CARGO build --release >&2
cp "$TARGET_DIR/release/tern" "$RUN/bin/tern"
TERN="$RUN/bin/tern"

wants() { local s; for s in "${SCENARIOS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

IDLE_BIN=""
if wants idle-10k; then
    log "building the idle-connection helper (cargo bench --no-run --bench idle_conns)"
    exe=$($CARGO bench --no-run --bench idle_conns --message-format=json-render-diagnostics |
        grep -o '"executable":"[^"]*idle_conns[^"]*"' | tail -1 | cut -d'"' -f4)
    cp "$exe" "$RUN/bin/idle_conns"
    IDLE_BIN="$RUN/bin/idle_conns"
fi

# The reference responder answers only these (they all fetch /1k.bin with keep-alive).
FLOOR_SCENARIOS=" ka-1k-64 ka-1k-1000 pipeline-16 "
FLOOR_BIN=""
if [[ " ${SERVERS[*]} " == *" floor "* ]] || wants proxy-ka-1k; then
    log "building the reference responder (cargo bench --no-run --bench floor)"
    exe=$($CARGO bench --no-run --bench floor --message-format=json-render-diagnostics |
        grep -o '"executable":"[^"]*floor[^"]*"' | tail -1 | cut -d'"' -f4)
    cp "$exe" "$RUN/bin/floor"
    FLOOR_BIN="$RUN/bin/floor"
fi

TERN_ALLOC=""
ALLOC_NA=""
if wants allocs; then
    log "building tern with --features alloc-count (target dir $TARGET_DIR/alloc-count)"
    if CARGO_TARGET_DIR="$TARGET_DIR/alloc-count" $CARGO build --release --features alloc-count \
        >"$OUT/logs/alloc-build.log" 2>&1; then
        cp "$TARGET_DIR/alloc-count/release/tern" "$RUN/bin/tern-alloc"
        TERN_ALLOC="$RUN/bin/tern-alloc"
    else
        ALLOC_NA="build with --features alloc-count failed: $(grep -m1 '^error' "$OUT/logs/alloc-build.log" || tail -1 "$OUT/logs/alloc-build.log")"
        log "allocs: n/a ($ALLOC_NA)"
    fi
fi

log "generating the document root in $RUN/root"
ROOT="$RUN/root"
mkdir -p "$ROOT/files"
head -c 1024 /dev/urandom >"$ROOT/1k.bin"
head -c 16384 /dev/urandom >"$ROOT/16k.bin"
head -c 1048576 /dev/urandom >"$ROOT/1m.bin"
head -c 104857600 /dev/urandom >"$ROOT/100m.bin"
for ((i = 0; i < 1000; i++)); do
    printf -v f '%s/files/f%04d.bin' "$ROOT" "$i"
    printf '%0511d\n' "$i" >"$f"
done
chmod -R a+rX "$ROOT"

# One certificate for every server's HTTPS listener: ECDSA P-256, self-signed.
CERT="$RUN/cert.pem" KEY="$RUN/key.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$KEY" -out "$CERT" 2>/dev/null
chmod 644 "$CERT" "$KEY"

# wrk scripts: each ends with the same done() that prints one line for this script to read.
cat >"$RUN/done.lua" <<'EOF'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT requests=%d bytes=%d duration_us=%d errors=%d status_errors=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF
cp "$RUN/done.lua" "$RUN/plain.lua"
cat - "$RUN/done.lua" >"$RUN/files.lua" <<'EOF'
-- The 1,000 files in turn: each request, on whichever connection, asks for the next one.
local reqs = {}
local n = 0
init = function(args)
  for i = 0, 999 do reqs[i + 1] = wrk.format(nil, string.format("/files/f%04d.bin", i)) end
end
request = function()
  n = n % #reqs + 1
  return reqs[n]
end
EOF
cat - "$RUN/done.lua" >"$RUN/pipeline.lua" <<'EOF'
-- 16 requests per write, as wrk's scripts/pipeline.lua; wrk counts each response.
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/1k.bin") end
  req = table.concat(r)
end
request = function() return req end
EOF

# cgi-sh's script, outside the document root (tern: a `cgi` route; lighttpd: mod_alias +
# mod_cgi executing it directly).
CGI_DIR="$RUN/cgi-bin"
mkdir -p "$CGI_DIR"
cat >"$CGI_DIR/hello.sh" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nhello from sh\n'
EOF
chmod 755 "$CGI_DIR" "$CGI_DIR/hello.sh"

# Servers that cannot run a scenario: prints why, or nothing.
not_applicable() { # SCENARIO SERVER
    case $1:$2 in
    cgi-sh:nginx | cgi-sh:h2o) echo "no CGI" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Servers. start_server NAME [BINARY [ARGS...]] sets SRV_PID (the process started),
# SRV_WORKER (the process that serves and is measured), SRV_PORT and SRV_DIR.

PORT_SEQ=0
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

next_port() {
    local p
    while :; do
        PORT_SEQ=$((PORT_SEQ + 1))
        p=$((PORT_BASE + PORT_SEQ % 1000))
        port_in_use "$p" || { echo "$p"; return; }
    done
}

# SCENARIO (global, set by the run loop) selects what the plain listener's / does: files from
# $ROOT, a reverse proxy to $UPSTREAM_PORT (proxy-ka-1k), or files plus /cgi-bin/ (cgi-sh).
SCENARIO=""
# The proxy scenarios and the upstream port each proxies to.
is_proxy() { [ "$SCENARIO" = proxy-ka-1k ] || [ "$SCENARIO" = proxy-100m ]; }
up_port() { if [ "$SCENARIO" = proxy-100m ]; then echo "$STREAM_PORT"; else echo "$UPSTREAM_PORT"; fi; }
write_config() { # NAME DIR PORT
    local name=$1 dir=$2 port=$3
    case $name in
    tern)
        : >"$dir/tern.toml"
        if is_proxy; then
            printf '[route."/"]\nproxy = "http://127.0.0.1:%s"\n' "$(up_port)" >"$dir/tern.toml"
        elif [ "$SCENARIO" = cgi-sh ]; then
            printf '[route."/cgi-bin/"]\ncgi = "%s"\n' "$CGI_DIR" >"$dir/tern.toml"
        fi
        ;;
    nginx)
        local plain="root $ROOT;" upstream=""
        if is_proxy; then
            upstream="upstream up { server 127.0.0.1:$(up_port); keepalive 64; }"
            plain="location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
        fi
        mkdir -p "$dir/tmp"
        {
            [ "$(id -u)" -eq 0 ] && echo "user root;"
            cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $ANCHOR_MAXCONN; }
http {
    types { application/octet-stream bin; }
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    $upstream
    server {
        listen 127.0.0.1:$port;
        $plain
    }
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        root $ROOT;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
    }
}
EOF
        } >"$dir/nginx.conf"
        ;;
    lighttpd)
        cat >"$dir/lighttpd.conf" <<EOF
server.document-root = "$ROOT"
server.bind = "127.0.0.1"
server.port = $port
server.max-worker = 0
server.network-backend = "sendfile"
server.max-fds = $NOFILE
server.max-connections = $((NOFILE / 2))
server.max-keep-alive-requests = 1000000
server.errorlog = "$dir/error.log"
mimetype.assign = (".bin" => "application/octet-stream")
server.modules += ("mod_openssl")
\$SERVER["socket"] == "127.0.0.1:$TLS_PORT" {
    ssl.engine = "enable"
    ssl.pemfile = "$CERT"
    ssl.privkey = "$KEY"
    ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "TLSv1.3", "Groups" => "X25519")
}
EOF
        if is_proxy; then
            cat >>"$dir/lighttpd.conf" <<EOF
server.modules += ("mod_proxy")
proxy.server = ("" => (("host" => "127.0.0.1", "port" => $(up_port))))
EOF
        elif [ "$SCENARIO" = cgi-sh ]; then
            cat >>"$dir/lighttpd.conf" <<EOF
server.modules += ("mod_alias", "mod_cgi")
alias.url = ("/cgi-bin/" => "$CGI_DIR/")
\$HTTP["url"] =~ "^/cgi-bin/" { cgi.assign = ("" => "") }
EOF
        fi
        ;;
    h2o)
        {
            [ "$(id -u)" -eq 0 ] && echo "user: root"
            local h2o_root="file.dir: $ROOT"
            is_proxy && h2o_root="proxy.reverse.url: http://127.0.0.1:$(up_port)/"
            cat <<EOF
num-threads: 1
max-connections: $ANCHOR_MAXCONN
pid-file: $dir/h2o.pid
error-log: $dir/error.log
listen:
  host: 127.0.0.1
  port: $port
hosts:
  default:
    paths:
      /:
        $h2o_root
  "127.0.0.1:$TLS_PORT":
    listen:
      host: 127.0.0.1
      port: $TLS_PORT
      ssl:
        certificate-file: $CERT
        key-file: $KEY
        minimum-version: TLSv1.3
    paths:
      /:
        file.dir: $ROOT
EOF
        } >"$dir/h2o.conf"
        ;;
    esac
}

start_server() {
    local name=$1 bin=${2:-$TERN}
    shift $(($# > 1 ? 2 : 1))
    SRV_PORT=$(next_port)
    # (next_port runs in a subshell: its PORT_SEQ step is lost, so the TLS port is looked for
    # further on.)
    TLS_PORT=$(PORT_SEQ=$((PORT_SEQ + 500)) && next_port)
    SRV_DIR="$RUN/srv/$name-$PORT_SEQ"
    mkdir -p "$SRV_DIR"
    write_config "$name" "$SRV_DIR" "$SRV_PORT"
    local pin=(taskset -c "$SERVER_CPU")
    case $name in
    tern)
        if [ "$bin" = "$TERN_ALLOC" ]; then
            # SIGUSR2's reading goes to the error log, which must then be a file.
            "${pin[@]}" "$bin" -l "127.0.0.1:$SRV_PORT" --max-requests 1000000 --error-log "$SRV_DIR/error.log" "$@" "$ROOT" \
                >"$SRV_DIR/out.log" 2>"$SRV_DIR/stderr.log" &
        else
            # A ROOT argument would replace the file's / route (flags beat the file).
            local conf=() root=("$ROOT")
            [ -s "$SRV_DIR/tern.toml" ] && conf=(-c "$SRV_DIR/tern.toml")
            is_proxy && root=()
            "${pin[@]}" "$bin" "${conf[@]}" -l "127.0.0.1:$SRV_PORT" --listen-tls "127.0.0.1:$TLS_PORT" \
                --tls-cert "$CERT" --tls-key "$KEY" --max-requests 1000000 "$@" "${root[@]}" \
                >"$SRV_DIR/out.log" 2>"$SRV_DIR/error.log" &
        fi
        ;;
    nginx) "${pin[@]}" nginx -e "$SRV_DIR/error.log" -p "$SRV_DIR" -c "$SRV_DIR/nginx.conf" >"$SRV_DIR/out.log" 2>&1 & ;;
    lighttpd) "${pin[@]}" lighttpd -D -f "$SRV_DIR/lighttpd.conf" >"$SRV_DIR/out.log" 2>&1 & ;;
    h2o) "${pin[@]}" h2o -c "$SRV_DIR/h2o.conf" >"$SRV_DIR/out.log" 2>&1 & ;;
    floor) "${pin[@]}" "$FLOOR_BIN" "127.0.0.1:$SRV_PORT" "$ROOT/1k.bin" >"$SRV_DIR/out.log" 2>"$SRV_DIR/error.log" & ;;
    esac
    SRV_PID=$!
    STARTED+=("$SRV_PID")
    SRV_WORKER=""
    local i code
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            break
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$SRV_PORT/1k.bin" || true)
        if [ "$code" = 200 ]; then
            SRV_WORKER=$SRV_PID
            if [ "$name" = nginx ]; then
                # Measure the worker, the master's only child.
                SRV_WORKER=$(awk '{print $1}' "/proc/$SRV_PID/task/$SRV_PID/children" 2>/dev/null || true)
                [ -n "$SRV_WORKER" ] || SRV_WORKER=$(pgrep -P "$SRV_PID" | head -1)
                STARTED+=("$SRV_WORKER")
            fi
            return 0
        fi
        sleep 0.05
    done
    log "$name did not start; its logs:"
    tail -n 5 "$SRV_DIR"/*.log >&2 || true
    stop_server
    return 1
}

stop_server() {
    local i
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        log "server $SRV_PID ignored SIGTERM for 10 s: killing it"
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_PID" 2>/dev/null || true
    if [ -n "$SRV_WORKER" ] && [ "$SRV_WORKER" != "$SRV_PID" ]; then
        kill -KILL "$SRV_WORKER" 2>/dev/null || true
        forget "$SRV_WORKER"
    fi
    forget "$SRV_PID"
    cp "$SRV_DIR/error.log" "$OUT/logs/$(basename "$SRV_DIR").error.log" 2>/dev/null || true
}

# utime + stime of the whole process (all threads), in clock ticks. The command name in
# /proc/PID/stat may hold spaces, so fields are counted after its closing parenthesis.
# With a second argument (children), cutime + cstime too: the CPU of the children the process
# has reaped (fields 14-17).
cpu_ticks() { # PID [children]
    local s
    s=$(cat "/proc/$1/stat")
    s=${s##*) }
    local with=${2:-}
    # shellcheck disable=SC2086 # splitting the fields is the point
    set -- $s
    if [ -n "$with" ]; then
        echo $((${12} + ${13} + ${14} + ${15}))
    else
        echo $((${12} + ${13}))
    fi
}

# proxy-ka-1k's shared upstream: one floor, started once, accepting for every proxy in turn.
# It prints `accepted N` (its running total of accepted connections) at most every 100 ms.
UPSTREAM_PORT="" UPSTREAM_PID="" UPSTREAM_LOG=""
start_upstream() {
    UPSTREAM_PORT=$(PORT_SEQ=$((PORT_SEQ + 250)) && next_port)
    UPSTREAM_LOG="$OUT/logs/upstream.floor.log"
    taskset -c "$UPSTREAM_CPU" "$FLOOR_BIN" "127.0.0.1:$UPSTREAM_PORT" "$ROOT/1k.bin" >"$UPSTREAM_LOG" 2>&1 &
    UPSTREAM_PID=$!
    STARTED+=("$UPSTREAM_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q '^listening' "$UPSTREAM_LOG" 2>/dev/null && return 0
        sleep 0.05
    done
    log "the upstream (floor) did not start: $(cat "$UPSTREAM_LOG")"
    return 1
}
# The upstream's total of accepted connections, once its count has settled (it is printed
# within 100 ms of a change).
upstream_accepted() {
    sleep 0.25
    awk '/^accepted / {n = $2} END {print n + 0}' "$UPSTREAM_LOG"
}

# proxy-100m's shared upstream: a tern serving $ROOT (sendfile), started once.
STREAM_PORT="" STREAM_PID=""
start_stream_upstream() {
    STREAM_PORT=$(PORT_SEQ=$((PORT_SEQ + 260)) && next_port)
    local logf="$OUT/logs/upstream.tern.log" i
    taskset -c "$UPSTREAM_CPU" "$TERN" -l "127.0.0.1:$STREAM_PORT" --max-requests 1000000 "$ROOT" \
        >"$logf" 2>&1 &
    STREAM_PID=$!
    STARTED+=("$STREAM_PID")
    for ((i = 0; i < 100; i++)); do
        grep -q '^listening' "$logf" 2>/dev/null && return 0
        sleep 0.05
    done
    log "the upstream (tern) did not start: $(cat "$logf")"
    STREAM_PID=""
    return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# One CPU's counters from /proc/stat, in clock ticks: "busy total steal" (busy excludes idle,
# iowait and steal).
cpu_stat() {
    awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= 9; i++) t += $i
        print t - $5 - $6 - $9, t, $9}' /proc/stat
}

record() { # SCENARIO SERVER ROUND KEY VALUE
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"
}

# ---------------------------------------------------------------------------------------------
# Clients. Each sets R_REQ, R_BYTES, R_SECS, R_ERR (transport errors plus non-2xx/3xx).

client() { taskset -c "$CLIENT_CPU" "$@"; }

run_wrk() { # CONNS PATH SCRIPT SECONDS LOGNAME
    local conns=$1 path=$2 script=$3 secs=$4 logf="$OUT/logs/$5.log" line
    client timeout $((secs + 60)) wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$RUN/$script" \
        "$BASE_URL$path" >"$logf" 2>&1 || true
    line=$(grep '^WRK_RESULT' "$logf" || true)
    if [ -z "$line" ]; then
        R_REQ=0 R_BYTES=0 R_SECS=0 R_ERR=-1
        return 1
    fi
    local kv
    local -A w=()
    for kv in ${line#WRK_RESULT }; do w[${kv%%=*}]=${kv#*=}; done
    R_REQ=${w[requests]} R_BYTES=${w[bytes]}
    R_SECS=$(awk -v d="${w[duration_us]}" 'BEGIN {print d / 1e6}')
    R_ERR=$((w[errors] + w[status_errors]))
}

run_ab() { # LOGNAME ARGS... (ab's own arguments, URL last)
    local logf="$OUT/logs/$1.log"
    shift
    client timeout $((DURATION + 120)) ab -r -s 10 "$@" >"$logf" 2>&1 || true
    R_REQ=$(awk '/^Complete requests:/ {print $3}' "$logf")
    if [ -z "$R_REQ" ]; then
        R_REQ=0 R_BYTES=0 R_SECS=0 R_ERR=-1
        return 1
    fi
    R_BYTES=$(awk '/^Total transferred:/ {print $3}' "$logf")
    R_SECS=$(awk '/^Time taken for tests:/ {print $5}' "$logf")
    R_ERR=$(awk '/^Failed requests:/ {n += $3} /^Non-2xx responses:/ {n += $3} END {print n + 0}' "$logf")
}

# 8 `openssl s_time -reuse` clients at once for SECONDS: every connection must resume (s_time
# prints r for a resumed one); one that did not counts as an error.
run_stime() { # LOGNAME SECONDS
    local logf="$OUT/logs/$1.log" secs=$2 i pids=()
    for ((i = 0; i < 8; i++)); do
        client timeout $((secs + 30)) openssl s_time -connect "127.0.0.1:$TLS_PORT" -reuse \
            -time "$secs" -www /1k.bin >"$logf.$i" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null || true
    R_REQ=0 R_BYTES=0 R_ERR=0 R_SECS=$secs
    for ((i = 0; i < 8; i++)); do
        local n b new t
        n=$(awk '/connections in .* real seconds/ {print $1}' "$logf.$i" | tail -1)
        b=$(awk '/bytes read per connection/ {print $(NF-4)}' "$logf.$i" | tail -1)
        if [ -z "$n" ]; then
            R_ERR=$((R_ERR + 1))
            continue
        fi
        # Connections that did not resume: any progress mark other than r.
        new=$(sed -n '/^starting/,/connections in/p' "$logf.$i" |
            grep -v -e '^starting' -e 'connections in' | tr -d 'r\n' | wc -c)
        t=$(awk '/connections in .* real seconds/ {print $4}' "$logf.$i" | tail -1)
        [ "${t:-0}" -gt "$R_SECS" ] && R_SECS=$t
        R_REQ=$((R_REQ + n)) R_BYTES=$((R_BYTES + n * ${b:-0})) R_ERR=$((R_ERR + new))
        cat "$logf.$i" >>"$logf"
        rm -f "$logf.$i"
    done
    [ "$R_REQ" -gt 0 ]
}

# ---------------------------------------------------------------------------------------------
# Scenarios: run_SCENARIO-kind SCENARIO SERVER ROUND, with the server already started.

throughput_run() { # SCENARIO SERVER ROUND
    local sc=$1 srv=$2 round=$3 tag="$1.$2.r$3" t0 t1
    local conns path script tool=wrk ab_tls=() ab_c=32 ab_path=/1k.bin children=""
    local up0="" up1="" ss_pid="" ss_log="$OUT/logs/$tag.upstream-ss" 
    BASE_URL="http://127.0.0.1:$SRV_PORT"
    case $sc in
    ka-1k-64) conns=64 path=/1k.bin script=plain.lua ;;
    ka-1k-1000) conns=1000 path=/1k.bin script=plain.lua ;;
    ka-files) conns=64 path=/ script=files.lua ;;
    pipeline-16) conns=64 path=/1k.bin script=pipeline.lua ;;
    ka-16k) conns=64 path=/16k.bin script=plain.lua ;;
    ka-1m) conns=16 path=/1m.bin script=plain.lua ;;
    big-100m) conns=1 path=/100m.bin script=plain.lua ;;
    new-conn) tool=ab ;;
    tls-ka-1k) conns=64 path=/1k.bin script=plain.lua BASE_URL="https://127.0.0.1:$TLS_PORT" ;;
    tls-100m) conns=1 path=/100m.bin script=plain.lua BASE_URL="https://127.0.0.1:$TLS_PORT" ;;
    tls-new) tool=ab ab_tls=(-f TLS1.3) BASE_URL="https://127.0.0.1:$TLS_PORT" ;;
    tls-resume) tool=stime ;;
    proxy-ka-1k) conns=64 path=/1k.bin script=plain.lua ;;
    proxy-100m) conns=1 path=/100m.bin script=plain.lua ;;
    cgi-sh) tool=ab ab_c=16 ab_path=/cgi-bin/hello.sh children=1 ;;
    esac
    local url="$BASE_URL$ab_path"
    if [ "$WARMUP" != 0 ]; then
        if [ $tool = wrk ]; then
            run_wrk "$conns" "$path" "$script" "$WARMUP" "$tag.warmup" || true
        elif [ $tool = stime ]; then
            run_stime "$tag.warmup" "$WARMUP" || true
        else
            run_ab "$tag.warmup" "${ab_tls[@]}" -c "$ab_c" -t "$WARMUP" -n 10000000 "$url" || true
        fi
    fi
    if [ "$sc" = proxy-ka-1k ]; then
        up0=$(upstream_accepted)
        # Established upstream connections, sampled every 0.5 s during the run.
        (
            while :; do
                ss -Htn state established "( sport = :$UPSTREAM_PORT )" 2>/dev/null | wc -l
                sleep 0.5
            done
        ) >"$ss_log" &
        ss_pid=$!
        STARTED+=("$ss_pid")
    fi
    local s0 c0 s1 c1
    t0=$(cpu_ticks "$SRV_WORKER" $children)
    s0=$(cpu_stat "$SERVER_CPU") c0=$(cpu_stat "$CLIENT_CPU")
    if [ $tool = wrk ]; then
        run_wrk "$conns" "$path" "$script" "$DURATION" "$tag" || true
    elif [ $tool = stime ]; then
        run_stime "$tag" "$DURATION" || true
    else
        run_ab "$tag" "${ab_tls[@]}" -c "$ab_c" -t "$DURATION" -n 10000000 "$url" || true
    fi
    t1=$(cpu_ticks "$SRV_WORKER" $children 2>/dev/null || echo "$t0")
    s1=$(cpu_stat "$SERVER_CPU") c1=$(cpu_stat "$CLIENT_CPU")
    if [ "$R_REQ" -le 0 ]; then
        log "  $srv: no result (see $OUT/logs/$tag.log)"
        record "$sc" "$srv" "$round" failed 1
        return
    fi
    local stats
    stats=$(awk -v r="$R_REQ" -v b="$R_BYTES" -v s="$R_SECS" -v dt=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {
        printf "%.1f %.2f %.3f %.1f", r / s, b / 1048576 / s, dt / hz * 1e6 / r, 100 * dt / hz / s }')
    read -r rps mibs cpu pct <<<"$stats"
    # A second view from /proc/stat: everything CPU 0 did (the server, the kernel's softirq
    # work, and anything else that ran there) and how busy the load generator's CPU was.
    local cpu0 other client steal
    stats=$(awk -v r="$R_REQ" -v hz="$CLK_TCK" -v p="$pct" -v a="$s0" -v b="$s1" -v c="$c0" -v d="$c1" 'BEGIN {
        split(a, x, " "); split(b, y, " "); split(c, u, " "); split(d, w, " ")
        busy = y[1] - x[1]; tot = y[2] - x[2]; ctot = w[2] - u[2]
        if (tot <= 0) tot = 1
        if (ctot <= 0) ctot = 1
        other = 100 * busy / tot - p
        # Tick sampling and steal accounting can put the process a little above its CPU.
        if (other < 0) other = 0
        printf "%.3f %.1f %.1f %.1f", busy / hz * 1e6 / r, other,
            100 * (w[1] - u[1]) / ctot, 100 * (y[3] - x[3]) / tot }')
    read -r cpu0 other client steal <<<"$stats"
    record "$sc" "$srv" "$round" req_s "$rps"
    record "$sc" "$srv" "$round" mib_s "$mibs"
    record "$sc" "$srv" "$round" cpu_us "$cpu"
    record "$sc" "$srv" "$round" cpu_pct "$pct"
    record "$sc" "$srv" "$round" errors "$R_ERR"
    record "$sc" "$srv" "$round" requests "$R_REQ"
    record "$sc" "$srv" "$round" cpu0_us "$cpu0"
    record "$sc" "$srv" "$round" cpu0_other_pct "$other"
    record "$sc" "$srv" "$round" client_pct "$client"
    record "$sc" "$srv" "$round" steal_pct "$steal"
    if [ -n "$ss_pid" ]; then
        kill -TERM "$ss_pid" 2>/dev/null || true
        wait "$ss_pid" 2>/dev/null || true
        forget "$ss_pid"
        up1=$(upstream_accepted)
        local up_max
        up_max=$(sort -n "$ss_log" | tail -1)
        record "$sc" "$srv" "$round" upstream_accepted $((up1 - up0))
        record "$sc" "$srv" "$round" upstream_max_est "${up_max:-0}"
        record "$sc" "$srv" "$round" req_per_upstream_conn \
            "$(awk -v r="$R_REQ" -v n=$((up1 - up0)) 'BEGIN {if (n > 0) printf "%.1f", r / n; else print "all on earlier ones"}')"
        log "  $srv: upstream accepted $((up1 - up0)) connections during the run (at most ${up_max:-0} established at once)"
    fi
    log "  $srv: $rps req/s, $mibs MiB/s, $cpu µs CPU/req ($cpu0 for all of CPU $SERVER_CPU)," \
        "server CPU $pct%, other work on its CPU $other%, load generator CPU $client%, errors $R_ERR"
}

idle_run() {
    local sc=$1 srv=$2 round=$3 tag="$1.$2.r$3" line
    line=$(client timeout 120 "$IDLE_BIN" "127.0.0.1:$SRV_PORT" "$SRV_WORKER" "$IDLE_CONNS" /1k.bin \
        2>"$OUT/logs/$tag.log" | grep '^IDLE_RESULT' || true)
    echo "$line" >>"$OUT/logs/$tag.log"
    if [ -z "$line" ]; then
        log "  $srv: no result (see $OUT/logs/$tag.log)"
        record "$sc" "$srv" "$round" failed 1
        return
    fi
    local k v kv
    local -A I=()
    for kv in ${line#IDLE_RESULT }; do
        k=${kv%%=*} v=${kv#*=}
        record "$sc" "$srv" "$round" "$k" "$v"
        I[$k]=$v
    done
    local per
    per=$(awk -v a="${I[rss_after_kb]}" -v b="${I[rss_before_kb]}" -v n="${I[alive]}" \
        'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "n/a" }')
    record "$sc" "$srv" "$round" bytes_per_conn "$per"
    log "  $srv: ${I[alive]} of ${I[conns]} connections held, RSS ${I[rss_before_kb]} -> ${I[rss_after_kb]} KiB, $per bytes/conn"
}

syscall_run() {
    local sc=$1 srv=$2 round=$3 tag="$1.$2.r$3" i
    command -v strace >/dev/null || { record "$sc" "$srv" "$round" failed 1; return; }
    run_ab "$tag.warmup" -k -c 64 -n 2000 "http://127.0.0.1:$SRV_PORT/1k.bin" || true
    # Not through `client`: $! must be strace itself (taskset execs it), not a subshell.
    taskset -c "$CLIENT_CPU" strace -c -f -p "$SRV_WORKER" -o "$OUT/logs/$tag.strace" \
        2>"$OUT/logs/$tag.strace-err" &
    local spid=$!
    STARTED+=("$spid")
    for ((i = 0; i < 100; i++)); do
        grep -q attached "$OUT/logs/$tag.strace-err" 2>/dev/null && break
        sleep 0.05
    done
    run_ab "$tag" -k -c 64 -n "$SYSCALL_REQUESTS" "http://127.0.0.1:$SRV_PORT/1k.bin" || true
    # SIGTERM: a background job of a script ignores SIGINT.
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    forget "$spid"
    local total
    total=$(awk '$NF == "total" {print $4}' "$OUT/logs/$tag.strace" 2>/dev/null || true)
    if [ -z "$total" ] || [ "$R_REQ" -le 0 ]; then
        log "  $srv: no result (see $OUT/logs/$tag.strace*)"
        record "$sc" "$srv" "$round" failed 1
        return
    fi
    local per top
    per=$(awk -v t="$total" -v r="$R_REQ" 'BEGIN {printf "%.2f", t / r}')
    # The most frequent calls, per request: "read 1.00, writev 1.00, ...".
    top=$(awk -v r="$R_REQ" '/^-/ {sep++; next} sep == 1 && NF >= 5 {print $4, $NF}' \
        "$OUT/logs/$tag.strace" | sort -rn | head -4 |
        awk -v r="$R_REQ" '{printf "%s%s %.2f", (NR > 1 ? ", " : ""), $2, $1 / r}')
    record "$sc" "$srv" "$round" requests "$R_REQ"
    record "$sc" "$srv" "$round" syscalls "$total"
    record "$sc" "$srv" "$round" sys_per_req "$per"
    record "$sc" "$srv" "$round" top "$top"
    record "$sc" "$srv" "$round" errors "$R_ERR"
    log "  $srv: $per syscalls/request ($top)"
}

# Sends SIGUSR2 and waits (up to 3 s; the log is flushed within 1 s) for a new
# `allocations: N` line in the error log; prints N, or nothing.
alloc_reading() {
    local logf="$SRV_DIR/error.log" before i
    before=$(grep -c 'allocations' "$logf" || true)
    kill -USR2 "$SRV_PID"
    for ((i = 0; i < 60; i++)); do
        sleep 0.05
        if [ "$(grep -c 'allocations' "$logf" || true)" -gt "$before" ]; then
            grep 'allocations' "$logf" | tail -1 | grep -o 'allocations: [0-9]*' | awk '{print $2}'
            return
        fi
    done
}

alloc_run() {
    local sc=$1 srv=$2 round=$3 tag="$1.$2.r$3" n1 n2
    local url="http://127.0.0.1:$SRV_PORT/1k.bin"
    run_ab "$tag.warmup" -k -c 64 -n 20000 "$url" || true
    n1=$(alloc_reading)
    run_ab "$tag" -k -c 64 -n "$ALLOC_REQUESTS" "$url" || true
    n2=$(alloc_reading)
    if [ -z "$n1" ] || [ -z "$n2" ] || [ "$R_REQ" -le 0 ]; then
        local why="no 'allocations: N' line after SIGUSR2"
        grep -q 'needs --features alloc-count' "$SRV_DIR/error.log" && why="tern says: allocation counting needs --features alloc-count"
        log "  $srv: n/a ($why)"
        record "$sc" "$srv" "$round" na "$why"
        return
    fi
    record "$sc" "$srv" "$round" requests "$R_REQ"
    record "$sc" "$srv" "$round" allocations $((n2 - n1))
    record "$sc" "$srv" "$round" allocs_per_req "$(awk -v d=$((n2 - n1)) -v r="$R_REQ" 'BEGIN {printf "%.6f", d / r}')"
    record "$sc" "$srv" "$round" errors "$R_ERR"
    log "  $srv: $((n2 - n1)) allocations over $R_REQ requests"
}

# ---------------------------------------------------------------------------------------------
# The runs: per scenario, rounds of every server in turn.

STARTED_AT=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T_START=$(date +%s)
if wants proxy-ka-1k && ! start_upstream; then
    log "proxy-ka-1k: no upstream, skipped"
fi
if wants proxy-100m && ! start_stream_upstream; then
    log "proxy-100m: no upstream, skipped"
fi
for sc in "${SCENARIOS[@]}"; do
    kind=${KIND[$sc]}
    SCENARIO=$sc
    servers=("${SERVERS[@]}")
    if [ "$kind" = allocs ]; then
        servers=(tern)
        if [ -z "$TERN_ALLOC" ]; then
            record "$sc" tern 1 na "$ALLOC_NA"
            continue
        fi
    fi
    rounds=$ROUNDS
    case $kind in idle | strace | allocs) rounds=$COUNT_ROUNDS ;; esac
    for ((round = 1; round <= rounds; round++)); do
        log "[$sc] round $round/$rounds"
        for srv in "${servers[@]}"; do
            [ "$srv" = floor ] && [[ $FLOOR_SCENARIOS != *" $sc "* ]] && continue
            if [ -n "$(not_applicable "$sc" "$srv")" ]; then
                record "$sc" "$srv" "$round" na "$(not_applicable "$sc" "$srv")"
                continue
            fi
            if { [ "$sc" = proxy-ka-1k ] && [ -z "$UPSTREAM_PID" ]; } ||
                { [ "$sc" = proxy-100m ] && [ -z "$STREAM_PID" ]; }; then
                record "$sc" "$srv" "$round" failed 1
                continue
            fi
            bin=$TERN
            [ "$kind" = allocs ] && bin=$TERN_ALLOC
            if ! start_server "$srv" "$bin"; then
                record "$sc" "$srv" "$round" failed 1
                continue
            fi
            case $kind in
            wrk | ab | stime) throughput_run "$sc" "$srv" "$round" ;;
            idle) idle_run "$sc" "$srv" "$round" ;;
            strace) syscall_run "$sc" "$srv" "$round" ;;
            allocs) alloc_run "$sc" "$srv" "$round" ;;
            esac
            stop_server
        done
    done
done
ELAPSED=$(($(date +%s) - T_START))

# ---------------------------------------------------------------------------------------------
# The report.

# Median over rounds of one key (or nothing when there is no value).
agg() { # SCENARIO SERVER KEY
    awk -F'\t' -v s="$1" -v v="$2" -v k="$3" '$1 == s && $2 == v && $4 == k {x[n++] = $5}
        END {
            if (n == 0) exit
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (x[j] + 0 < x[i] + 0) {t = x[i]; x[i] = x[j]; x[j] = t}
            print (n % 2 ? x[(n - 1) / 2] : (x[n / 2 - 1] + x[n / 2]) / 2)
        }' "$RAW"
}
last() { awk -F'\t' -v s="$1" -v v="$2" -v k="$3" '$1 == s && $2 == v && $4 == k {x = $5} END {printf "%s", x}' "$RAW"; }
sum() { awk -F'\t' -v s="$1" -v v="$2" -v k="$3" '$1 == s && $2 == v && $4 == k {x += $5; n++} END {if (n) print x}' "$RAW"; }
fmt() { # VALUE DECIMALS
    [ -n "$1" ] && awk -v x="$1" -v d="$2" 'BEGIN {printf "%.*f", d, x}' || printf 'n/a'
}
ratio() { # TERN ANCHOR
    if [ -n "$1" ] && [ -n "$2" ] && awk -v b="$2" 'BEGIN {exit !(b + 0 != 0)}'; then
        awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a / b}'
    else
        printf 'n/a'
    fi
}
# The best anchor's value of KEY: highest when DIR is max, lowest when min. Prints "VALUE SERVER".
best() { # SCENARIO KEY DIR
    local srv v out=""
    for srv in "${ANCHORS[@]}"; do
        v=$(agg "$1" "$srv" "$2")
        [ -n "$v" ] && out+="$v $srv"$'\n'
    done
    [ -n "$out" ] || return 0
    if [ "$3" = max ]; then
        grep -v '^$' <<<"$out" | sort -gr | head -1
    else
        grep -v '^$' <<<"$out" | sort -g | head -1
    fi
}
ratio_row() { # LABEL then pairs of (TERN_VALUE ANCHOR_VALUE)
    local label=$1 row
    shift
    row="| $label |"
    while [ $# -gt 0 ]; do
        row+=" $(ratio "$1" "$2") |"
        shift 2
    done
    echo "$row"
}

# tern ÷ each anchor and ÷ the best (lowest) one for one lower-is-better metric, as a table,
# and the best ratio into the summary.
metric_ratios() { # SCENARIO KEY LABEL
    local t b n srv
    t=$(agg "$1" tern "$2")
    echo "| tern ÷ | $3 ↓ |"
    echo "|---|---:|"
    for srv in "${ANCHORS[@]}"; do
        ratio_row "$srv" "$t" "$(agg "$1" "$srv" "$2")"
    done
    read -r b n <<<"$(best "$1" "$2" min)" || true
    echo "| best anchor | $(ratio "$t" "${b:-}") (${n:-n/a}) |"
    summary+=("| $1 ($3) | | | $(ratio "$t" "${b:-}") (${n:-n/a}) | |")
}

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ {print $2; exit}')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null)" ] || commit+=" (with uncommitted changes)"
version_of() {
    case $1 in
    tern) echo "tern $commit" ;;
    nginx) nginx -v 2>&1 | sed 's/.*version: //' ;;
    lighttpd) lighttpd -v 2>&1 | head -1 | awk '{print $1}' ;;
    h2o) h2o -v 2>&1 | head -1 | sed 's/ version /\//' ;;
    floor) echo "floor (benches/floor.rs, reference)" ;;
    esac
}

{
    echo "# tern load benchmark"
    echo
    echo "- date: $STARTED_AT (took ${ELAPSED} s)"
    echo "- kernel: $(uname -srm)"
    echo "- CPU: $cpu_model, $(nproc) CPUs; servers pinned to CPU $SERVER_CPU, load generator to CPU $CLIENT_CPU"
    echo "- servers: $(for s in "${SERVERS[@]}"; do version_of "$s"; done | paste -sd';' - | sed 's/;/; /g')"
    echo "- clients: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'); $(ab -V 2>&1 | head -1 | sed 's/This is //;s/, Version//;s/ <.*//')"
    echo "- settings: BENCH_SECONDS=$DURATION BENCH_ROUNDS=$ROUNDS BENCH_COUNT_ROUNDS=$COUNT_ROUNDS" \
        "BENCH_WARMUP=$WARMUP, descriptor limit $NOFILE"
    echo
    echo "Every server runs one worker with production settings (nginx: sendfile, open_file_cache,"
    echo "no access log; lighttpd: sendfile backend, no access log, server.max-worker = 0; h2o:"
    echo "num-threads 1, no access log; tern: defaults but --max-requests 1000000 like the others). Each value is the median over rounds; every"
    echo "round starts each server afresh, warms it up for BENCH_WARMUP s, then measures."
    echo "Server CPU per request = (utime + stime of the serving process, from /proc/PID/stat) /"
    echo "responses the client completed; on loopback it includes the kernel's TCP work done in the"
    echo "server's context. \"server CPU %\" near 100 means the server was the bottleneck; when it is"
    echo "well below 100, the load generator (\"load-gen CPU %\", its CPU's busy share) or latency"
    echo "was. MiB/s counts every byte the client read, headers included."
    echo "Ratios are tern ÷ anchor: above 1 is better for req/s and MiB/s, below 1 is better for CPU."
    echo "The load generator is one wrk (or ab) thread on one CPU: near 100 % it caps req/s, and then"
    echo "CPU µs/req is the fairer comparison. tern keeps its default limit of 10,000 requests per"
    echo "connection (nginx and lighttpd are given 1,000,000); idle timeouts are each server's default."
    echo "HTTPS (tls-*): every server has a second listener with the same ECDSA P-256 certificate,"
    echo "TLS 1.3 (nginx, lighttpd and h2o are limited to it; tern offers 1.2 too, clients pick 1.3),"
    echo "X25519, session tickets on; OpenSSL on the anchors, rustls with aws-lc-rs in tern. tls-new"
    echo "is one full handshake per request (ab opens each connection afresh without resuming), so its"
    echo "CPU µs/req is the server's CPU per full handshake plus one small response."
    if [[ " ${SERVERS[*]} " == *" floor "* ]]; then
        echo "floor (reference) is benches/floor.rs, not an anchor: the cheapest possible responder, one"
        echo "precomputed write of a same-sized response per request head, no parsing, no file. Its CPU per"
        echo "request is roughly the kernel's share of a request; it runs in the keep-alive /1k.bin scenarios."
    fi
    echo

    summary=()
    for sc in "${SCENARIOS[@]}"; do
        kind=${KIND[$sc]}
        cmd=${CMD[$sc]//-t S/-t $DURATION}
        echo "## $sc: ${DESC[$sc]}"
        echo
        case $kind in
        wrk | ab | stime)
            [ "$kind" = wrk ] && cmd="${cmd/wrk /wrk -d${DURATION}s }"
            echo "\`$cmd\`"
            echo
            echo "| server | req/s | MiB/s | CPU µs/req | server CPU % | load-gen CPU % | errors |"
            echo "|---|---:|---:|---:|---:|---:|---:|"
            for srv in "${SERVERS[@]}"; do
                label=$srv
                if [ "$srv" = floor ]; then
                    [[ $FLOOR_SCENARIOS == *" $sc "* ]] || continue
                    label="floor (reference)"
                fi
                na=$(not_applicable "$sc" "$srv")
                if [ -n "$na" ]; then
                    echo "| $label | n/a ($na) | | | | | |"
                    continue
                fi
                if [ -z "$(agg "$sc" "$srv" req_s)" ]; then
                    echo "| $label | failed | | | | | |"
                    continue
                fi
                echo "| $label | $(fmt "$(agg "$sc" "$srv" req_s)" 0) | $(fmt "$(agg "$sc" "$srv" mib_s)" 1) |" \
                    "$(fmt "$(agg "$sc" "$srv" cpu_us)" 2) | $(fmt "$(agg "$sc" "$srv" cpu_pct)" 0) |" \
                    "$(fmt "$(agg "$sc" "$srv" client_pct)" 0) | $(sum "$sc" "$srv" errors) |"
            done
            echo
            noisy=$(awk -F'\t' -v s="$sc" '$1 == s && (($4 == "cpu0_other_pct" && $5 > 10) || ($4 == "steal_pct" && $5 > 10)) {print $2 " round " $3}' "$RAW" | sort -u | paste -sd, - | sed 's/,/, /g')
            if [ -n "$noisy" ]; then
                echo "⚠ CPU $SERVER_CPU was not the server's alone (other work or hypervisor steal above 10 %) in: $noisy."
                echo "req/s suffers most from that; CPU µs/req much less. See \"Every round\", or rerun."
                echo
            fi
            idle=$(awk -F'\t' -v s="$sc" '$1 == s && ($4 == "cpu_pct" || $4 == "client_pct") {
                    k = $2 " round " $3; if (!(k in n)) order[m++] = k; n[k]++; if ($5 < 50) low[k]++ }
                END { for (i = 0; i < m; i++) if (low[order[i]] == 2) print order[i] }' "$RAW" | paste -sd, - | sed 's/,/, /g')
            if [ -n "$idle" ]; then
                echo "Neither the server's nor the load generator's CPU was half busy in: $idle. Those runs"
                echo "were bound by latency (waits, timers), not CPU."
                echo
            fi
            if [ "$sc" = proxy-ka-1k ]; then
                echo "Only the proxy's CPU is counted; the upstream is one benches/floor.rs shared by all,"
                echo "pinned to CPU $UPSTREAM_CPU. Upstream connections it accepted during the measured run"
                echo "(from its own count) and the most it had established at once (ss, every 0.5 s):"
                echo
                echo "| server | upstream connections accepted | max established | requests per new upstream connection |"
                echo "|---|---:|---:|---:|"
                for srv in tern "${ANCHORS[@]}"; do
                    [ -n "$(agg "$sc" "$srv" req_s)" ] || continue
                    echo "| $srv | $(agg "$sc" "$srv" upstream_accepted) | $(agg "$sc" "$srv" upstream_max_est) |" \
                        "$(last "$sc" "$srv" req_per_upstream_conn) |"
                done
                echo
            fi
            if [ "$sc" = proxy-100m ]; then
                echo "Only the proxy's CPU is counted; the upstream is one tern serving the files (sendfile),"
                echo "shared by all, pinned to CPU $UPSTREAM_CPU. MiB/s is the figure to compare."
                echo
            fi
            if [ "$sc" = cgi-sh ]; then
                echo "CPU µs/req here includes the children: utime + stime + cutime + cstime of the server"
                echo "process (every script it spawned and reaped during the run)."
                echo
            fi
            t_r=$(agg "$sc" tern req_s) t_m=$(agg "$sc" tern mib_s) t_c=$(agg "$sc" tern cpu_us)
            echo "| tern ÷ | req/s ↑ | MiB/s ↑ | CPU µs/req ↓ |"
            echo "|---|---:|---:|---:|"
            for srv in "${ANCHORS[@]}"; do
                [ -n "$(not_applicable "$sc" "$srv")" ] && continue
                ratio_row "$srv" "$t_r" "$(agg "$sc" "$srv" req_s)" "$t_m" "$(agg "$sc" "$srv" mib_s)" \
                    "$t_c" "$(agg "$sc" "$srv" cpu_us)"
            done
            read -r b_r n_r <<<"$(best "$sc" req_s max)" || true
            read -r b_m n_m <<<"$(best "$sc" mib_s max)" || true
            read -r b_c n_c <<<"$(best "$sc" cpu_us min)" || true
            r1=$(ratio "$t_r" "${b_r:-}") r2=$(ratio "$t_m" "${b_m:-}") r3=$(ratio "$t_c" "${b_c:-}")
            echo "| best anchor | $r1 (${n_r:-n/a}) | $r2 (${n_m:-n/a}) | $r3 (${n_c:-n/a}) |"
            f_c=$(agg "$sc" floor cpu_us)
            floor_col=""
            if [ -n "$f_c" ]; then
                ratio_row "floor (reference)" "$t_r" "$(agg "$sc" floor req_s)" "$t_m" "$(agg "$sc" floor mib_s)" "$t_c" "$f_c"
                floor_col="$(ratio "$f_c" "${b_c:-}")"
                echo
                echo "The reference responder costs $floor_col of the best anchor's CPU per request: no server"
                echo "that reads and answers each request can go much below that ratio here."
            fi
            summary+=("| $sc | $r1 (${n_r:-n/a}) | $r2 (${n_m:-n/a}) | $r3 (${n_c:-n/a}) | $floor_col |")
            ;;
        idle)
            echo "\`benches/idle_conns.rs\`: $IDLE_CONNS connections, one \`GET /1k.bin\` each, then held idle;"
            echo "VmRSS of the serving process before and after (kernel socket memory is not counted)."
            echo
            echo "| server | connections held | RSS before KiB | RSS after KiB | bytes/conn ↓ | open s |"
            echo "|---|---:|---:|---:|---:|---:|"
            for srv in tern "${ANCHORS[@]}"; do
                if [ -z "$(agg "$sc" "$srv" bytes_per_conn)" ]; then
                    echo "| $srv | failed | | | | |"
                    continue
                fi
                echo "| $srv | $(fmt "$(agg "$sc" "$srv" alive)" 0) of $(agg "$sc" "$srv" conns) |" \
                    "$(fmt "$(agg "$sc" "$srv" rss_before_kb)" 0) | $(fmt "$(agg "$sc" "$srv" rss_after_kb)" 0) |" \
                    "$(fmt "$(agg "$sc" "$srv" bytes_per_conn)" 0) | $(fmt "$(awk -v m="$(agg "$sc" "$srv" open_ms)" 'BEGIN {print m / 1000}')" 1) |"
            done
            echo
            metric_ratios "$sc" bytes_per_conn bytes/conn
            ;;
        strace)
            echo "\`strace -c -f -p PID\` attached to the serving process while \`ab -k -c64 -n $SYSCALL_REQUESTS\`"
            echo "fetches /1k.bin (after 2,000 warm-up requests). Under strace the server is much slower;"
            echo "only the counts matter here."
            echo
            echo "| server | requests | syscalls | syscalls/req ↓ | most frequent, per request |"
            echo "|---|---:|---:|---:|---|"
            for srv in tern "${ANCHORS[@]}"; do
                if [ -z "$(agg "$sc" "$srv" sys_per_req)" ]; then
                    echo "| $srv | failed | | | |"
                    continue
                fi
                echo "| $srv | $(agg "$sc" "$srv" requests) | $(fmt "$(agg "$sc" "$srv" syscalls)" 0) |" \
                    "$(fmt "$(agg "$sc" "$srv" sys_per_req)" 2) | $(last "$sc" "$srv" top) |"
            done
            echo
            metric_ratios "$sc" sys_per_req syscalls/req
            ;;
        allocs)
            echo "tern built with \`--features alloc-count\`; SIGUSR2 logs the process-wide allocation count."
            echo "Reading after 20,000 warm-up requests, then \`ab -k -c64 -n $ALLOC_REQUESTS\`, then a second"
            echo "reading (the 64 new connections of that run are included)."
            echo
            echo "| server | requests | allocations | allocations/req |"
            echo "|---|---:|---:|---:|"
            na=$(last "$sc" tern na)
            if [ -n "$na" ] || [ -z "$(agg "$sc" tern allocs_per_req)" ]; then
                echo "| tern | n/a | n/a | n/a |"
                echo
                echo "n/a: ${na:-no reading}"
            else
                echo "| tern | $(agg "$sc" tern requests) | $(fmt "$(agg "$sc" tern allocations)" 0) |" \
                    "$(fmt "$(agg "$sc" tern allocs_per_req)" 5) |"
            fi
            ;;
        esac
        echo
    done

    if [ ${#summary[@]} -gt 0 ]; then
        echo "## Summary: tern ÷ best anchor"
        echo
        echo "| scenario | req/s ↑ | MiB/s ↑ | CPU µs/req ↓ (or the scenario's metric ↓) | floor ÷ best anchor, CPU µs/req |"
        echo "|---|---:|---:|---:|---:|"
        printf '%s\n' "${summary[@]}"
        echo
    fi

    if grep -q "$(printf '\treq_s\t')" "$RAW"; then
        echo "## Every round"
        echo
        echo "CPU $SERVER_CPU µs/req: all busy time of the server's CPU (from /proc/stat) per request, a second"
        echo "measure of the server's cost that also holds softirq work and anything else run there. It"
        echo "is sampled at clock ticks, so it undercounts a CPU that is mostly idle between short bursts."
        echo "other %: that CPU's busy time not spent by the server process; steal %: time the hypervisor"
        echo "took from it."
        echo
        echo "| scenario | server | round | req/s | MiB/s | CPU µs/req | CPU $SERVER_CPU µs/req | server CPU % | other % | steal % | load-gen CPU % | errors |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' 'NR > 1 && $4 ~ /^(req_s|mib_s|cpu_us|cpu_pct|errors|cpu0_us|cpu0_other_pct|client_pct|steal_pct)$/ {
                key = $1 "|" $2 "|" $3
                if (!(key in seen)) { seen[key] = 1; order[n++] = key }
                v[key, $4] = $5
            }
            END {
                for (i = 0; i < n; i++) {
                    k = order[i]; split(k, p, "|")
                    if (v[k, "req_s"] == "") continue
                    printf "| %s | %s | %s | %.0f | %.1f | %.2f | %.2f | %.0f | %.0f | %.1f | %.0f | %s |\n", p[1], p[2], p[3],
                        v[k, "req_s"], v[k, "mib_s"], v[k, "cpu_us"], v[k, "cpu0_us"], v[k, "cpu_pct"],
                        v[k, "cpu0_other_pct"], v[k, "steal_pct"], v[k, "client_pct"], v[k, "errors"]
                }
            }' "$RAW"
    fi
} >"$OUT/report.md"

cat "$OUT/report.md"
log "report: $OUT/report.md; raw values: $RAW; logs: $OUT/logs/"
