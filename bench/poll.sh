#!/usr/bin/env bash
# bench/poll.sh: what one poll of GET /api/prechats/{id}/meta costs per session strategy, as ratios against
# roofs measured in the same run (tessera's own GET /healthz, nginx `return 200`), plus server CPU per request.
#
#   bench/poll.sh            # ≈3 minutes on a 2-core machine; table on stdout, raw numbers in bench/results/
#
# Starts its own redis-server, PostgreSQL 15 and nginx on free loopback ports in a temp dir, one
# `tessera serve --threads 1` per configuration (all kept up, so passes can interleave), and stops all of
# them on exit, error, Ctrl-C or SIGTERM. Knobs (environment): TESSERA_BIN (default build-bench-srv/tessera,
# then build/tessera), DURATION (seconds per wrk run, 5), PASSES (2), CONNS (32), RESULTS (output file),
# KEEP_TMP=1 (keep the temp dir with every log). See bench/README.md for what the ratios mean.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-5}
PASSES=${PASSES:-2}
CONNS=${CONNS:-32}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS=${RESULTS:-$HERE/results/$(date +%F)-poll.txt}
USER_NAME=bench
USER_PW=bench-poll-pw-1

die() { echo "poll.sh: $*" >&2; exit 1; }
note() { echo "poll.sh: $*" >&2; }

# ---- prerequisites (one line each, non-zero) ------------------------------------------------------------
for c in wrk redis-server redis-cli nginx curl awk ps ss timeout getconf; do
    command -v "$c" >/dev/null 2>&1 || die "missing prerequisite: $c (apt-get install wrk redis-server nginx-light curl procps iproute2)"
done
for c in initdb postgres pg_isready; do
    [ -x "$PG_BIN/$c" ] || die "missing prerequisite: $PG_BIN/$c (apt-get install postgresql-15)"
done
command -v psql >/dev/null 2>&1 || die "missing prerequisite: psql (apt-get install postgresql-client-15)"
if [ -z "${TESSERA_BIN:-}" ]; then
    for b in "$ROOT/build-bench-srv/tessera" "$ROOT/build/tessera"; do
        [ -x "$b" ] && { TESSERA_BIN=$b; break; }
    done
fi
[ -n "${TESSERA_BIN:-}" ] && [ -x "$TESSERA_BIN" ] || die "missing prerequisite: tessera binary (cmake -S $ROOT -B $ROOT/build-bench-srv -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF && make -C $ROOT/build-bench-srv -j2 tessera_bin, or set TESSERA_BIN)"
AS_ROOT=0
if [ "$(id -u)" = 0 ]; then
    AS_ROOT=1
    command -v runuser >/dev/null 2>&1 || die "missing prerequisite: runuser (util-linux)"
    id postgres >/dev/null 2>&1 || die "missing prerequisite: a 'postgres' system user (PostgreSQL refuses to run as root)"
fi
HZ=$(getconf CLK_TCK)
LOAD0=$(cut -d" " -f1-3 /proc/loadavg)

# ---- process bookkeeping and clean-up --------------------------------------------------------------------
TMP=$(mktemp -d /tmp/tessera-poll.XXXXXX)
chmod 755 "$TMP"   # postgres must be able to enter it
declare -a SRV_PIDS=()   # tessera servers
REDIS_PID="" NGINX_PID="" PG_RUNNER_PID="" PG_PID="" WRK_PID=""
CLEANED=0

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Sends sig to pid, waits up to 10 s, then SIGKILL. Only pids this script started.
stop_pid() {
    local pid=$1 sig=$2 i
    alive "$pid" || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || return 0; sleep 0.1; done
    note "pid $pid ignored SIG$sig for 10 s, killing"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    [ "$CLEANED" = 1 ] && return
    CLEANED=1
    trap '' INT TERM
    stop_pid "$WRK_PID" TERM
    local p
    for p in "${SRV_PIDS[@]}"; do stop_pid "$p" TERM; done
    stop_pid "$NGINX_PID" QUIT
    stop_pid "$REDIS_PID" TERM
    # postgres runs under runuser: signal the postmaster itself (fast shutdown), then reap runuser
    [ -z "$PG_PID" ] && [ -f "$TMP/pg/data/postmaster.pid" ] && PG_PID=$(head -1 "$TMP/pg/data/postmaster.pid")
    stop_pid "$PG_PID" INT
    stop_pid "$PG_RUNNER_PID" TERM
    wait 2>/dev/null || true
    if [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ] && [ "${KEEP_TMP:-0}" != 1 ]; then
        note "failed (exit $rc); logs: $TMP (kept)"
    elif [ "${KEEP_TMP:-0}" = 1 ]; then
        note "logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'die "error at line $LINENO: $BASH_COMMAND"' ERR

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port below the ephemeral range (32768+ here: an outgoing connection's local port would make bind fail)
# that no socket uses; each port is taken (its server started) before the next one is picked.
free_port() {
    local p=$((12000 + RANDOM % 20000))
    while port_open "$p" || [ -n "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; do p=$((p + 1)); done
    echo "$p"
}
# wait_for SECONDS PID DESCRIPTION CMD...: polls CMD every 0.1 s; dies when PID exits or time runs out.
wait_for() {
    local secs=$1 pid=$2 what=$3 i
    shift 3
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        alive "$pid" || die "$what: process exited (see $TMP)"
        sleep 0.1
    done
    die "$what: not ready after ${secs}s (see $TMP)"
}

# utime+stime (clock ticks) of the given processes and of their direct children (postgres backends, nginx
# worker); all threads of a process are in its /proc/<pid>/stat.
cpu_ticks() {
    local total=0 pid s f all=() p
    for p in "$@"; do all+=("$p" $(ps -o pid= --ppid "$p" 2>/dev/null || true)); done
    for pid in "${all[@]}"; do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        s=${s##*) }  # the command name may hold blanks; fields restart after ") "
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# ---- backends -----------------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
mkdir -p "$TMP/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
    --logfile "$TMP/redis/redis.log" --daemonize no >/dev/null 2>&1 &
REDIS_PID=$!
wait_for 10 "$REDIS_PID" redis-server redis-cli -p "$REDIS_PORT" ping

PG_PORT=$(free_port)
mkdir -p "$TMP/pg/sock"
AS_PG=()
if [ "$AS_ROOT" = 1 ]; then
    AS_PG=(runuser -u postgres --)
    chown -R postgres: "$TMP/pg"
fi
(cd "$TMP/pg" && LC_ALL=C timeout 120 "${AS_PG[@]}" "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres -A trust \
    -E UTF8 --no-sync >"$TMP/pg/initdb.log" 2>&1) || die "initdb failed: $(tail -3 "$TMP/pg/initdb.log" | tr '\n' ' ')"
(cd "$TMP/pg" && exec env LC_ALL=C "${AS_PG[@]}" "$PG_BIN/postgres" -D "$TMP/pg/data" -p "$PG_PORT" -k "$TMP/pg/sock" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    >"$TMP/pg/postgres.log" 2>&1) &
PG_RUNNER_PID=$!
wait_for 30 "$PG_RUNNER_PID" postgres "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -U postgres -t 1
PG_PID=$(head -1 "$TMP/pg/data/postmaster.pid")
psql_() { PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }
psql_ "CREATE DATABASE tess_db" >/dev/null
psql_ "CREATE DATABASE tess_cached" >/dev/null
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT"

NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    default_type text/plain;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 200 'ok'; }
    }
}
EOF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx/" -e "$TMP/nginx/logs/error.log" >"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
wait_for 10 "$NGINX_PID" nginx curl -sf -m 2 "http://127.0.0.1:$NGINX_PORT/"

# ---- one tessera per configuration ----------------------------------------------------------------------
# name | strategy | database | redis url ('-' = none)
CONFIGS=(
    "db-sqlite|db|sqlite:$TMP/db-sqlite.db|-"
    "db-pg|db|$PG_URL/tess_db|-"
    "redis|redis|sqlite:$TMP/redis.db|redis://127.0.0.1:$REDIS_PORT/1"
    "jwt|jwt|sqlite:$TMP/jwt.db|-"
    "cached-sqlite|cached|sqlite:$TMP/cached-sqlite.db|redis://127.0.0.1:$REDIS_PORT/2"
    "cached-pg|cached|$PG_URL/tess_cached|redis://127.0.0.1:$REDIS_PORT/3"
)
declare -A PORT PID COOKIE ETAG META CLAIM
CLAIM[db-sqlite]="10–50 ms" CLAIM[db-pg]="10–50 ms" CLAIM[redis]="< 1 ms" CLAIM[jwt]="0 ms"
CLAIM[cached-sqlite]="1–5 ms" CLAIM[cached-pg]="1–5 ms"
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# a clean environment: nothing inherited from the caller's tessera settings
TESS_ENV=(env -u DATABASE_URL -u SESSION_STRATEGY -u REDIS_URL -u TESSERA_LISTEN -u TESSERA_THREADS -u TESSERA_ENV
    -u SESSION_FALLBACK -u SESSION_COOKIE -u SESSION_PREFIX -u NEXTAUTH_SECRET SESSION_SECRET="$SECRET")

start_config() {
    local spec=$1 name strategy db redis port
    IFS='|' read -r name strategy db redis <<<"$spec"
    port=$(free_port)
    local args=(serve --listen "127.0.0.1:$port" --database "$db" --strategy "$strategy" --threads 1)
    [ "$redis" != - ] && args+=(--redis "$redis")
    "${TESS_ENV[@]}" "$TESSERA_BIN" "${args[@]}" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    SRV_PIDS+=("${PID[$name]}")
    PORT[$name]=$port
    wait_for 20 "${PID[$name]}" "tessera ($name)" curl -sf -m 2 "http://127.0.0.1:$port/readyz"

    printf '%s\n' "$USER_PW" | "${TESS_ENV[@]}" timeout 30 "$TESSERA_BIN" user add "$USER_NAME" --role visitor \
        --password-stdin --database "$db" >>"$TMP/$name.log" 2>&1 || die "$name: tessera user add failed (see $TMP/$name.log)"
    local base="http://127.0.0.1:$port" jar="$TMP/$name.jar" code body
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -c "$jar" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$USER_NAME\",\"password\":\"$USER_PW\"}" "$base/api/auth/login")
    [ "$code" = 200 ] || die "$name: login answered $code"
    # curl writes HttpOnly cookies as '#HttpOnly_host ...': take every 7-field line, comments or not
    COOKIE[$name]=$(awk -F'\t' 'NF >= 7 { printf "%s%s=%s", sep, $6, $7; sep = "; " }' "$jar")
    [ -n "${COOKIE[$name]}" ] || die "$name: no cookie after login"
    body=$(curl -s -m 5 -H "Cookie: ${COOKIE[$name]}" -H 'Content-Type: application/json' \
        -d '{"topic":"poll benchmark"}' "$base/api/prechats")
    local id
    id=$(grep -o '"id":[0-9]*' <<<"$body" | head -1 | cut -d: -f2) || true
    [ -n "$id" ] || die "$name: POST /api/prechats answered: $body"
    META[$name]="$base/api/prechats/$id/meta"
    ETAG[$name]=$(curl -s -m 5 -D - -o /dev/null -H "Cookie: ${COOKIE[$name]}" "${META[$name]}" |
        awk 'tolower($1) == "etag:" { sub(/\r$/, ""); print $2 }')
    [ -n "${ETAG[$name]}" ] || die "$name: no ETag on ${META[$name]}"
}

# Answers the status of one poll, with or without If-None-Match.
poll_status() {
    local name=$1 etag=${2:-} h=()
    [ -n "$etag" ] && h=(-H "If-None-Match: $etag")
    curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Cookie: ${COOKIE[$name]}" "${h[@]}" "${META[$name]}"
}

for spec in "${CONFIGS[@]}"; do start_config "$spec"; done
for spec in "${CONFIGS[@]}"; do
    name=${spec%%|*}
    [ "$(poll_status "$name" "${ETAG[$name]}")" = 304 ] || die "$name: If-None-Match poll is not 304"
    [ "$(poll_status "$name")" = 200 ] || die "$name: plain poll is not 200"
done

# ---- load ---------------------------------------------------------------------------------------------
cat >"$TMP/poll.lua" <<'EOF'
-- Adds the session cookie and (for the 304 path) If-None-Match; prints wrk's summary on one line.
wrk.method = "GET"
local cookie, etag = os.getenv("POLL_COOKIE"), os.getenv("POLL_ETAG")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
if etag and etag ~= "" then wrk.headers["If-None-Match"] = etag end
done = function(s, lat, req)
  io.write(string.format(
    "WRK requests=%d duration_us=%d bytes=%d lat_mean_us=%.1f lat_p50_us=%d lat_p99_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    s.requests, s.duration, s.bytes, lat.mean, lat:percentile(50), lat:percentile(99),
    s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout))
end
EOF

RAW="$TMP/raw.txt"
: >"$RAW"
FAILS=()

# run_load PASS TARGET PATH URL SERVER_PID STORE_PID COOKIE ETAG
run_load() {
    local pass=$1 target=$2 path=$3 url=$4 spid=$5 store=$6 cookie=$7 etag=$8
    local s0 s1 b0=0 b1=0 out line
    s0=$(cpu_ticks "$spid")
    [ "$store" != - ] && b0=$(cpu_ticks $store)
    POLL_COOKIE=$cookie POLL_ETAG=$etag timeout $((DURATION + 30)) \
        wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$TMP/poll.lua" "$url" >"$TMP/wrk.out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { WRK_PID=""; die "wrk failed on $target/$path: $(tail -2 "$TMP/wrk.out" | tr '\n' ' ')"; }
    WRK_PID=""
    s1=$(cpu_ticks "$spid")
    [ "$store" != - ] && b1=$(cpu_ticks $store)
    alive "$spid" || { FAILS+=("$target: server died during $path load (log: $TMP/$target.log)"); }
    line=$(grep '^WRK ' "$TMP/wrk.out") || die "no wrk summary for $target/$path"
    local -A v
    for kv in ${line#WRK }; do v[${kv%%=*}]=${kv#*=}; done
    local errs=$((v[err_connect] + v[err_read] + v[err_write] + v[err_status] + v[err_timeout]))
    [ "$errs" -gt 0 ] && FAILS+=("$target/$path pass $pass: wrk errors connect=${v[err_connect]} read=${v[err_read]} write=${v[err_write]} non-2xx/3xx=${v[err_status]} timeout=${v[err_timeout]}")
    awk -v p="$pass" -v t="$target" -v pa="$path" -v r="${v[requests]}" -v d="${v[duration_us]}" -v b="${v[bytes]}" \
        -v lm="${v[lat_mean_us]}" -v l50="${v[lat_p50_us]}" -v l99="${v[lat_p99_us]}" -v e="$errs" \
        -v ds=$((s1 - s0)) -v db=$((b1 - b0)) -v hz="$HZ" -v st="$store" 'BEGIN {
        rps = r / (d / 1e6)
        printf "pass=%s target=%s path=%s requests=%d rps=%.0f lat_mean_us=%.0f lat_p50_us=%d lat_p99_us=%d bytes_per_req=%.0f errors=%d server_cpu_us_per_req=%.2f store_cpu_us_per_req=%s\n",
            p, t, pa, r, rps, lm, l50, l99, (r ? b / r : 0), e, (r ? ds * 1e6 / hz / r : 0),
            (st == "-" ? "-" : sprintf("%.2f", r ? db * 1e6 / hz / r : 0)) }' | tee -a "$RAW" >&2
}

store_pids() {  # the backends whose CPU a configuration may spend per poll, besides tessera's own
    case $1 in
        db-pg) echo "$PG_PID" ;;
        cached-pg) echo "$PG_PID $REDIS_PID" ;;
        redis | cached-sqlite) echo "$REDIS_PID" ;;
        *) echo - ;;
    esac
}

note "$PASSES passes × (nginx, healthz, ${#CONFIGS[@]} configs × {304, 200}) × ${DURATION}s, wrk -t1 -c$CONNS"
names=()
for spec in "${CONFIGS[@]}"; do names+=("${spec%%|*}"); done
for ((pass = 1; pass <= PASSES; pass++)); do
    order=("${names[@]}")
    if ((pass % 2 == 0)); then  # even passes run backwards, so a drift of the machine cancels out
        order=()
        for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[$i]}"); done
    fi
    run_load "$pass" nginx return200 "http://127.0.0.1:$NGINX_PORT/" "$NGINX_PID" - "" ""
    run_load "$pass" healthz roof "http://127.0.0.1:${PORT[db-sqlite]}/healthz" "${PID[db-sqlite]}" - "" ""
    for name in "${order[@]}"; do
        alive "${PID[$name]}" || continue
        st=$(store_pids "$name")
        run_load "$pass" "$name" 304 "${META[$name]}" "${PID[$name]}" "$st" "${COOKIE[$name]}" "${ETAG[$name]}"
        run_load "$pass" "$name" 200 "${META[$name]}" "${PID[$name]}" "$st" "${COOKIE[$name]}" ""
    done
done

# the polls still answer as they should after the load (a 200 instead of 304 would not be a wrk error)
for name in "${names[@]}"; do
    alive "${PID[$name]}" || { FAILS+=("$name: server not running after the load"); continue; }
    c=$(poll_status "$name" "${ETAG[$name]}")
    [ "$c" = 304 ] || FAILS+=("$name: If-None-Match poll answered $c after the load")
    c=$(poll_status "$name")
    [ "$c" = 200 ] || FAILS+=("$name: plain poll answered $c after the load")
    if grep -Eiq 'error|warn|fatal|abort|sanitizer' "$TMP/$name.log"; then
        FAILS+=("$name: server log: $(grep -Ei 'error|warn|fatal|abort|sanitizer' "$TMP/$name.log" | head -3 | tr '\n' ' ')")
    fi
done
grep -Eq 'ERROR|FATAL|PANIC' "$TMP/pg/postgres.log" &&
    FAILS+=("postgres log: $(grep -E 'ERROR|FATAL|PANIC' "$TMP/pg/postgres.log" | head -3 | tr '\n' ' ')")

# ---- report -------------------------------------------------------------------------------------------
TABLE=$(awk -v claims="$(for n in "${names[@]}"; do printf '%s=%s;' "$n" "${CLAIM[$n]}"; done)" '
function med(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lo(list,   a, n, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
function hi(list,   a, n, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
{
    delete f
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["target"] "|" f["path"]
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    rps[k] = rps[k] " " f["rps"]; lat[k] = lat[k] " " f["lat_mean_us"]
    cpu[k] = cpu[k] " " f["server_cpu_us_per_req"]
    if (f["store_cpu_us_per_req"] != "-") sto[k] = sto[k] " " f["store_cpu_us_per_req"]
}
END {
    n = split(claims, cl, ";"); for (i = 1; i <= n; i++) { split(cl[i], kv, "="); claim[kv[1]] = kv[2] }
    roof_h = med(rps["healthz|roof"]); roof_n = med(rps["nginx|return200"])
    printf "%-14s %-9s %8s %13s %8s %7s %10s %9s %9s  %s\n", "config", "path", "req/s", "(min-max)", "/healthz", \
        "/nginx", "us CPU/req", "store us", "mean lat", "note claims"
    for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, tp, "|")
        m = med(rps[k])
        st = (k in sto) ? sprintf("%.1f", med(sto[k])) : "-"
        printf "%-14s %-9s %8.0f %13s %8.2f %7.2f %10.1f %9s %7.2fms  %s\n", tp[1], tp[2], m, \
            sprintf("%.0f-%.0f", lo(rps[k]), hi(rps[k])), m / roof_h, m / roof_n, med(cpu[k]), st, \
            med(lat[k]) / 1000, (tp[1] in claim) ? claim[tp[1]] : "-"
    }
}' "$RAW")

{
    echo "# bench/poll.sh $(date -Is) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "# $(uname -sr); checkout $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'), binary $TESSERA_BIN built $(date -r "$TESSERA_BIN" -Is)"
    echo "# wrk -t1 -c$CONNS -d${DURATION}s, $PASSES passes (even passes in reverse order), tessera serve --threads 1;"
    echo "# healthz roof measured on the db-sqlite server; store = redis-server or postgres (+ backends) CPU;"
    echo "# redis and cached-* run with REDIS_URL (meta cache on), db-* and jwt without."
    echo "# load avg at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)"
    echo
    cat "$RAW"
    echo
    echo "$TABLE"
    if [ ${#FAILS[@]} -gt 0 ]; then
        echo
        printf 'PROBLEM: %s\n' "${FAILS[@]}"
    fi
} >"$TMP/report.txt"
mkdir -p "$(dirname "$RESULTS")"
cp "$TMP/report.txt" "$RESULTS"

echo "$TABLE"
echo "(raw numbers: $RESULTS; req/s = median of $PASSES passes; mean lat is wrk's at $CONNS connections)"
if [ ${#FAILS[@]} -gt 0 ]; then
    printf 'PROBLEM: %s\n' "${FAILS[@]}" >&2
    KEEP_TMP=1
    exit 2
fi
