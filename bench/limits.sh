#!/bin/sh
# The cost of the HTTP limits (request-head check per request, per-address count per connection): CPU time of
# the server per request (utime+stime from /proc/PID/stat) for /healthz, over keep-alive and with one
# connection per request, two builds interleaved (server on core 0, wrk on core 1).
#
#   OLD_BIN=/path/to/tessera-before NEW_BIN=build/tessera bench/limits.sh   # knobs: ROUNDS=3 DURATION=5
set -e
OLD_BIN=${OLD_BIN:?OLD_BIN: the build to compare with}
NEW_BIN=${NEW_BIN:-build/tessera}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
TMP=$(mktemp -d)
trap 'kill $(cat "$TMP"/*.pid) 2>/dev/null; rm -rf "$TMP"' EXIT

start() { # name bin port
    TESSERA_LISTEN=127.0.0.1:$3 DATABASE_URL=sqlite:$TMP/$1.db SESSION_SECRET=bench-secret \
        taskset -c 0 "$2" serve --threads 1 >"$TMP/$1.log" 2>&1 &
    echo $! >"$TMP/$1.pid"
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$3/healthz" >/dev/null && return; sleep 0.1; done
    echo "$1 did not start" >&2; exit 1
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks (10 ms)

start old "$OLD_BIN" 19101
start new "$NEW_BIN" 19102
for round in $(seq "$ROUNDS"); do
    for v in old:19101 new:19102; do
        name=${v%%:*} port=${v##*:} pid=$(cat "$TMP/${v%%:*}.pid")
        for mode in keepalive close; do
            c0=$(cpu "$pid")
            if [ $mode = close ]; then
                n=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -H "Connection: close" "http://127.0.0.1:$port/healthz" | awk '/requests in/{print $1}')
            else
                n=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$port/healthz" | awk '/requests in/{print $1}')
            fi
            c1=$(cpu "$pid")
            echo "round $round $name $mode requests=$n cpu_us_per_request=$(echo "($c1 - $c0) * 10000 / $n" | bc -l | cut -c1-6)"
        done
    done
done
