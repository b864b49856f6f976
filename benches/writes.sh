#!/bin/bash
# Writes and authentication (README "Performance"). Needs a release build, ab, wrk, htpasswd.
# PUT 1 KiB / 1 MiB (ab -u) and keep-alive GET 1 KiB with and without Basic auth (wrk), with
# the server's CPU time per request from /proc. Port 18090 on 127.0.0.1.
set -e
B=${BENCH_DIR:-/tmp/tern-bench-writes}
TERN=${TERN:-target/release/tern}
mkdir -p "$B"
rm -rf $B/data $B/site; mkdir -p $B/data $B/site/open $B/site/priv
head -c 1024 /dev/urandom > $B/site/open/1k; cp $B/site/open/1k $B/site/priv/1k
head -c 1024 /dev/urandom > $B/1k; head -c 1048576 /dev/urandom > $B/1m
htpasswd -nbB -C 10 u pw > $B/users
cat > $B/t.toml <<EOT
root = "$B/site"
log_level = "warn"
[route."/db/"]
store = "$B/data"
max_body = "4MiB"
[route."/priv/"]
static = "$B/site/priv"
auth = { realm = "r", htpasswd = "$B/users" }
EOT
$TERN -c $B/t.toml --listen 127.0.0.1:18090 --error-log $B/err.log > $B/out.log 2>&1 &
PID=$!
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
hz=$(getconf CLK_TCK)
measure() { # name, n, command...
  local name=$1 n=$2; shift 2
  local c0=$(cpu)
  local out=$("$@" 2>&1)
  local c1=$(cpu)
  local rps=$(echo "$out" | awk '/Requests per second|Requests\/sec/ {print $(NF>3?4:2); exit}')
  [ -z "$rps" ] && rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local reqs=$(echo "$out" | awk '/Complete requests/ {print $3} / requests in / {print $1}')
  local us=$(awk -v d=$((c1-c0)) -v hz=$hz -v r=$reqs 'BEGIN {printf "%.1f", d*1e6/hz/r}')
  echo "$name: $reqs requests, $rps req/s, server CPU $us us/request"
  echo "$out" | grep -E "Non-2xx|Failed requests|Socket errors" || true
}
measure "PUT 1KiB ab -c4" 0 ab -q -n 2000 -c 4 -u $B/1k -T application/octet-stream http://127.0.0.1:18090/db/k1k
measure "PUT 1MiB ab -c4" 0 ab -q -n 300 -c 4 -u $B/1m -T application/octet-stream http://127.0.0.1:18090/db/k1m
curl -s -o /dev/null -u u:pw http://127.0.0.1:18090/priv/1k
AUTH="Authorization: Basic $(echo -n u:pw | base64)"
for round in 1 2; do
measure "GET 1KiB keep-alive no auth (wrk)" 0 wrk -t1 -c16 -d5s http://127.0.0.1:18090/open/1k
measure "GET 1KiB keep-alive Basic auth (wrk)" 0 wrk -t1 -c16 -d5s -H "$AUTH" http://127.0.0.1:18090/priv/1k
done
kill $PID
