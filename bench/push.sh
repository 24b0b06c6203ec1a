#!/usr/bin/env bash
# bench/push.sh: what a waiting tab costs — 1 s polling vs long-poll vs the event stream — with TABS tabs on
# PRECHATS pre-chats, each pre-chat getting RATE messages a second, and the same with nobody writing (idle).
#
#   bench/push.sh          # ≈4 minutes; table on stdout and in bench/results/<date>-push.md
#
# One `tessera serve --threads 1` (embedded default: db strategy on SQLite) pinned to CPU 0, the load
# generator (bench/push_load.c) pinned to CPU 1. Server CPU is utime+stime from /proc over the measured
# window. Each run gets a fresh server (sessions persist in the database), so RSS is per mode: RSS per
# waiter beyond its connection = (RSS with TABS waiters - RSS with TABS polling connections) / TABS.
# Knobs (environment): TABS (10000), PRECHATS (100), RATE (1), DURATION (20), TESSERA_BIN, PUSH_LOAD, KEEP_TMP=1,
# MODES (a subset of "poll longpoll sse", for a look at one; the table then has holes), PERF=1 (perf record
# of the server during each measured window, into the temp dir).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TABS=${TABS:-10000}
PRECHATS=${PRECHATS:-100}
RATE=${RATE:-1}
DURATION=${DURATION:-20}
RAMP=5
RESULTS=${RESULTS:-$HERE/results/$(date +%F)-push.md}
die() { echo "push.sh: $*" >&2; exit 1; }
note() { echo "push.sh: $*" >&2; }

for c in curl taskset awk getconf python3; do command -v "$c" >/dev/null || die "missing prerequisite: $c"; done
if [ -z "${TESSERA_BIN:-}" ]; then
    for b in "$ROOT/build-bench-srv/tessera" "$ROOT/build/tessera"; do [ -x "$b" ] && { TESSERA_BIN=$b; break; }; done
fi
[ -x "${TESSERA_BIN:-}" ] || die "missing tessera (cmake -S $ROOT -B $ROOT/build-bench-srv -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF && make -C $ROOT/build-bench-srv -j2 tessera_bin)"
PUSH_LOAD=${PUSH_LOAD:-$ROOT/build-bench/push_load}
[ -x "$PUSH_LOAD" ] || die "missing push_load (cmake -S $ROOT/bench -B $ROOT/build-bench -DCMAKE_BUILD_TYPE=Release && make -C $ROOT/build-bench push_load)"
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((TABS + PRECHATS + 100)) ] || die "the fd limit ($(ulimit -n)) is below TABS+PRECHATS"
HZ=$(getconf CLK_TCK)

TMP=$(mktemp -d /tmp/tessera-push.XXXXXX)
SRV=""
cleanup() {
    [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
    [ "${KEEP_TMP:-0}" = 1 ] && note "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SESSION_SECRET=bench-push-secret-0123456789abcdef TESSERA_MAX_WAITERS_PER_SESSION=100000 \
       TESSERA_MAX_WAITERS_PER_USER=100000 TESSERA_MAX_CONNECTIONS=50000
DB="sqlite:${DBDIR:-$TMP}/bench.db"
note "adding $PRECHATS visitors"
for i in $(seq 1 "$PRECHATS"); do
    printf 'bench-pw\n' | "$TESSERA_BIN" user add "v$i" --role visitor --password-stdin --database "$DB" >/dev/null
done
start_server() {
    if [ -n "$SRV" ]; then
        kill -TERM "$SRV" 2>/dev/null || true
        wait "$SRV" 2>/dev/null || true
        SRV=""
    fi
    taskset -c 0 "$TESSERA_BIN" serve --threads 1 --database "$DB" --listen "127.0.0.1:$PORT" >>"$TMP/serve.log" 2>&1 &
    SRV=$!
    for _ in $(seq 1 100); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.05; done
    curl -sf "localhost:$PORT/healthz" >/dev/null || die "tessera did not start: $(tail -3 "$TMP/serve.log")"
}
start_server
note "logging in and opening $PRECHATS pre-chats"
: >"$TMP/cookies"
for i in $(seq 1 "$PRECHATS"); do
    c=$(curl -sf -D - -o /dev/null -H 'content-type: application/json' -d "{\"username\":\"v$i\",\"password\":\"bench-pw\"}" \
        "localhost:$PORT/api/auth/login" | awk -F'[ ;]' 'tolower($1)=="set-cookie:" {print $2}') || die "login failed"
    id=$(curl -s -H "cookie: $c" -H 'content-type: application/json' -d '{"topic":"bench"}' "localhost:$PORT/api/prechats" |
         sed -n 's/^{"id":\([0-9]*\).*/\1/p')
    [ -n "$id" ] || die "could not open a pre-chat"
    echo "$id $c" >>"$TMP/cookies"
done

cpu() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SRV/status"; }

# run MODE RATE: RESULT = the fields of push_load plus cpu_s, rss0_kb, rss_kb (not in a subshell: the server
# it restarts must stay this shell's)
run() {
    local mode=$1 rate=$2 out c0 c1 r0 r1
    start_server
    r0=$(rss_kb)
    taskset -c 1 "$PUSH_LOAD" "$mode" --port "$PORT" --cookies "$TMP/cookies" --tabs "$TABS" --seconds "$DURATION" \
        --rate "$rate" --ramp "$RAMP" >"$TMP/load.out" 2>"$TMP/load.err" &
    local lp=$!
    sleep "$RAMP.5"
    c0=$(cpu); r1=$(rss_kb)
    if [ "${PERF:-0}" = 1 ]; then
        perf record -g -o "$TMP/perf-$mode-$rate.data" -p "$SRV" -- sleep "$DURATION" >/dev/null 2>&1
    else
        sleep "$DURATION"
    fi
    c1=$(cpu)
    wait "$lp" || die "push_load $mode failed: $(cat "$TMP/load.err")"
    out=$(cat "$TMP/load.out")
    RESULT="$out cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}') rss0_kb=$r0 rss_kb=$r1"
}

field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

declare -A LINE
for rate in "$RATE" 0; do
    for mode in ${MODES:-poll longpoll sse}; do
        note "$mode, $rate message(s)/s per pre-chat, $TABS tabs, ${DURATION}s"
        run "$mode" "$rate"
        LINE[$mode-$rate]=$RESULT
        echo "  ${LINE[$mode-$rate]}" >&2
        [ "$(field "${LINE[$mode-$rate]}" errors)" = 0 ] || die "$mode: errors: ${LINE[$mode-$rate]}"
    done
done

{
    echo "# Waiting tabs: polling vs long-poll vs event stream — $(date +%F)"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo "Command: \`TABS=$TABS PRECHATS=$PRECHATS RATE=$RATE DURATION=$DURATION bench/push.sh\`; tessera serve --threads 1 (db"
    echo "strategy, SQLite) on CPU 0, push_load on CPU 1; $TABS tabs over $PRECHATS pre-chats (one session each)."
    echo
    echo "| load | mode | answers/s | events/s | wake p50 | wake p99 | server CPU per tab-minute | CPU per event | RSS per waiter |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for rate in "$RATE" 0; do
        for mode in poll longpoll sse; do
            l=${LINE[$mode-$rate]}
            awk -v l="$l" -v mode="$mode" -v rate="$rate" -v tabs="$TABS" -v secs="$DURATION" \
                -v base="$(field "${LINE[poll-$rate]}" rss_kb)" 'BEGIN {
                n = split(l, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); f[p[1]] = p[2] }
                ev = mode == "sse" ? f["events"] : (mode == "longpoll" ? f["wakes"] : 0)
                tabmin = f["cpu_s"] * 1e6 / (tabs * secs / 60)
                printf "| %s | %s | %.0f | %.0f | %s | %s | %.1f µs | %s | %s |\n",
                    (rate > 0 ? rate " msg/s per pre-chat" : "idle"), mode, f["requests"] / secs, ev / secs,
                    (f["lat_n"] > 0 ? sprintf("%.2f ms", f["lat_p50_us"] / 1000) : "–"),
                    (f["lat_n"] > 0 ? sprintf("%.2f ms", f["lat_p99_us"] / 1000) : "–"), tabmin,
                    (ev > 0 ? sprintf("%.1f µs", f["cpu_s"] * 1e6 / ev) : "–"),
                    (mode != "poll" ? sprintf("%.0f B", (f["rss_kb"] - base) * 1024 / tabs) : "–")
            }'
        done
    done
    echo
    for rate in "$RATE" 0; do
        p=$(field "${LINE[poll-$rate]}" cpu_s); l=$(field "${LINE[longpoll-$rate]}" cpu_s); s=$(field "${LINE[sse-$rate]}" cpu_s)
        awk -v p="$p" -v l="$l" -v s="$s" -v rate="$rate" 'BEGIN {
            printf "%s: server CPU per waiting tab-minute, polling : long-poll : stream = 1 : %.3f : %.3f (polling costs %.1fx the stream, %.1fx the long-poll)\n\n",
                (rate > 0 ? "With messages" : "Idle"), l / p, s / p, (s > 0 ? p / s : 0), (l > 0 ? p / l : 0) }'
    done
    echo "Raw lines:"
    echo
    for k in "${!LINE[@]}"; do echo "    $k: ${LINE[$k]}"; done
} | tee "$RESULTS"
