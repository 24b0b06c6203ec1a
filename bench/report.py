"""bench/report.py: bench/run's raw numbers -> <base>.md (the table), <base>.svg (its chart), <base>.json.

    python3 bench/report.py [--readme] bench/results/<date>.json
        rewrites the .md and .svg from a kept .json; --readme also puts its short table into README.md

Medians over the passes, with min–max; ratios are of medians measured in the same run.
"""
import html
import json
import os
import statistics
import sys

ORDER = ["db-sqlite", "db-pg", "redis", "jwt", "jwt-note", "nextauth-jwe", "authjs-jwe", "cached-sqlite", "cached-pg",
         "nextauth-db-sqlite", "nextauth-db-pg", "peer-pg", "peer-redis", "peer-jwt"]
PEER_OF = {"db-pg": "peer-pg", "cached-pg": "peer-pg", "redis": "peer-redis", "jwt": "peer-jwt",
           "jwt-note": "peer-jwt"}
LABEL = {"db-sqlite": "db (SQLite)", "db-pg": "db (PostgreSQL)", "redis": "redis", "jwt": "jwt (jsonwebtoken, jti)",
         "jwt-note": "jwt (the note's token, no jti)", "nextauth-jwe": "jwt (NextAuth v4 JWE, A256GCM)",
         "authjs-jwe": "jwt (Auth.js v5 JWE, A256CBC-HS512)", "cached-sqlite": "cached (SQLite)",
         "cached-pg": "cached (PostgreSQL)", "nextauth-db-sqlite": "db (NextAuth's Prisma tables, SQLite)",
         "nextauth-db-pg": "db (NextAuth's Prisma tables, PostgreSQL)", "peer-pg": "peer: Express + connect-pg-simple",
         "peer-redis": "peer: Express + connect-redis", "peer-jwt": "peer: Express + jsonwebtoken"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".0f", none="–"):
    return none if x is None else format(x, spec)


def group(runs):
    g = {}
    for r in runs:
        g.setdefault((r["target"], r["path"]), []).append(r)
    return g


def summary(rows):
    ok = [r for r in rows if r.get("ok")]
    rps = [r["rps"] for r in ok]
    return {"n": len(rows), "failed": len(rows) - len(ok), "rps": med(rps), "lo": min(rps) if rps else None,
            "hi": max(rps) if rps else None, "p50": med(r.get("p50_ms") for r in ok),
            "p90": med(r.get("p90_ms") for r in ok), "p99": med(r.get("p99_ms") for r in ok),
            "cpu": med(r.get("server_cpu_us") for r in ok), "store": med(r.get("store_cpu_us") for r in ok)}


def build(data):
    g = group(data["runs"])
    s = {k: summary(v) for k, v in g.items()}
    nginx = s.get(("nginx", "return200"), {}).get("rps")
    healthz = s.get(("healthz", "healthz"), {}).get("rps")
    rows = []
    for name in ORDER:
        for path in ("304", "200"):
            if (name, path) not in s:
                continue
            x = dict(s[(name, path)])
            x["name"], x["path"] = name, path
            x["strategy"] = data["configs"].get(name, {}).get("strategy", name.split("-")[0])
            x["x_nginx"] = x["rps"] / nginx if x["rps"] and nginx else None
            x["x_healthz"] = x["rps"] / healthz if x["rps"] and healthz else None
            peer = s.get((PEER_OF.get(name), path), {}).get("rps")
            x["x_peer"] = x["rps"] / peer if x["rps"] and peer else None
            rows.append(x)
    return s, rows, nginx, healthz


# What reaching the ×nginx target would take, per configuration family (measured with perf on the same
# set-up; the numbers in braces come from this run).
TAKES = {
    "db-sqlite": "the db strategy reads the store on every poll by definition: {tx}× leaves {room} µs above "
                 "/healthz for the whole lookup, less than the in-process lookup alone ({lookup} µs: the cookie's "
                 "check, one SQLite read of a random row, the session read in place). Polls at that "
                 "rate are what the near-cache is for: cached (SQLite) above.",
    "db-pg": "PostgreSQL shares the server's core here (2 cores), so its {store} µs per poll come out of the same "
             "budget as tessera's; lookups that arrive while one is in flight already go in one statement "
             "(`sid = ANY($1)`). "
             "The rest is libpq's client side (a send and a receive per batch, a PGresult per statement), the "
             "session document's parse, and the context switches to PostgreSQL and back.",
    "redis": "Redis shares the server's core (2 cores): each loop iteration's round trip costs a write, a read and "
             "two context switches (perf: the kernel is 56 % of the server's samples), and Redis's own {store} µs "
             "per poll. GET and PTTL both stay: a touch (connect-redis's and tessera's) moves only the key's TTL, "
             "so the document's cookie.expires can lag behind the truth.",
    "jwt": "{lookup} µs of it is the token check at library level (bench_lookup); /healthz itself costs "
           "{healthz} µs. The rest is the meta answer: routing, the authorization of the pre-chat, the cached body "
           "and its ETag, and h2o's per-request allocation and headers.",
    "cached": "a hit costs {lookup} µs at library level (bench_lookup); /healthz itself costs {healthz} µs. The rest "
              "is the meta answer, as for jwt.",
}

def waiting_section(rows):
    """Polling against long-poll against the event stream: server CPU per waiting tab-minute, per change."""
    if not rows:
        return []
    r0 = rows[0]
    out = [f"## Waiting tabs: polling, long-poll, the event stream (db on SQLite, one `tessera serve --threads 1`)",
           "",
           f"`push_load`: {r0['tabs']:,} tabs over {r0['prechats']} pre-chats (one visitor's session each), "
           f"{r0['seconds']} s measured after the ramp, a fresh server per run. *poll*: `GET .../meta` with "
           "If-None-Match once a second per tab, spread; *longpoll*: `?wait=30` with If-None-Match, again at once "
           "after each answer; *sse*: `GET .../events` held open. With messages, a poster writes one message a "
           "second to every pre-chat, so every tab has a change a second; idle, nobody writes. Wake latency: from "
           "the post to the tab's answer or event. RSS per waiter: above the polling run's, per tab.",
           "",
           "| load | mode | answers/s | changes delivered/s | wake p50 / p99 ms | errors | server CPU per tab-minute "
           "| × polling | CPU per change | RSS per waiter |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    base = {(r["rate"]): r for r in rows if r["mode"] == "poll"}
    for r in rows:
        secs, tabs = r["seconds"], r["tabs"]
        changes = r["events"] if r["mode"] == "sse" else r["wakes"] if r["mode"] == "longpoll" else 0
        tabmin = r["cpu_s"] * 1e6 / (tabs * secs / 60)
        b = base.get(r["rate"])
        btm = b["cpu_s"] * 1e6 / (b["tabs"] * b["seconds"] / 60) if b else None
        lat = f"{r['lat_p50_ms']:.2f} / {r['lat_p99_ms']:.2f}" if r["lat_n"] else "–"
        per = f"{r['cpu_s'] * 1e6 / changes:.1f} µs" if changes else "–"
        rss = f"{(r['rss_kb'] - b['rss_kb']) * 1024 / tabs:.0f} B" if b and r["mode"] != "poll" else "–"
        out.append(f"| {'1 msg/s per pre-chat' if r['rate'] else 'idle'} | {r['mode']} | {r['requests'] / secs:.0f} | "
                   f"{fmt(changes / secs if r['mode'] != 'poll' else None)} | {lat} | {r['errors']} | {tabmin:.1f} µs | "
                   f"{fmt(tabmin / btm if btm else None, '.3f')} | {per} | {rss} |")
    out += ["",
            "Idle, a held long-poll or stream costs a small fraction of a polling tab (the × polling column): the "
            "server does nothing for it until a change. With a change every second, each tab is woken every "
            "second, and delivering a change (the meta and the message, written into the tab's socket) costs "
            "about what answering a poll does; a long-poll also pays a new request and a session check per "
            "change. bench/push.sh runs the same measurement on its own.", ""]
    return out


SAME_FLOOR = {"nextauth-db-sqlite": "db-sqlite", "nextauth-db-pg": "db-pg"}  # one lookup per poll on that store


def takes(data, name, cfg_strategy, r, need, healthz_cpu):
    key = name if name in TAKES else SAME_FLOOR.get(name, cfg_strategy)
    text = TAKES.get(key)
    if text is None:
        return ""
    lk = {d["target"]: d for d in data.get("lookups") or []}.get(name)
    return " What it would take: " + text.format(
        tx=data["target_x_nginx"].get(name), room=fmt(need - healthz_cpu if healthz_cpu else None, ".1f"),
        lookup=fmt(lk["cpu_ns"] / 1000 if lk else None, ".1f"), store=fmt(r.get("store"), ".1f"),
        healthz=fmt(healthz_cpu, ".1f"))


def missed(data, s, rows):
    """A line per missed target: its floor in this run and what reaching it would take."""
    out = []
    ng = s.get(("nginx", "return200"), {})
    hz = s.get(("healthz", "healthz"), {}).get("cpu")
    said = set()
    for r in rows:
        if r["name"].startswith("peer"):
            continue
        tx = data["target_x_nginx"].get(r["name"])
        if (tx and r["name"] not in said and r["x_nginx"] is not None and r["x_nginx"] < tx and r["cpu"]
                and ng.get("cpu")):
            said.add(r["name"])
            need = ng["cpu"] / tx
            both = [x for x in rows if x["name"] == r["name"] and x["x_nginx"] is not None]
            ratios = " / ".join(f"{x['x_nginx']:.2f}× ({x['path']})" for x in both)
            core = r["cpu"] + (r["store"] or 0)
            out.append(f"- {LABEL[r['name']]}: {ratios} nginx (target {tx}). Floor: with the server's core the "
                       f"limit, req/s ∝ 1 / its CPU per request: {core:.1f} µs per poll ({r['path']}"
                       + (f": tessera's {r['cpu']:.1f} plus the store's {r['store']:.1f} on the same core"
                          if r["store"] else "")
                       + f") against nginx's {ng['cpu']:.1f} µs bounds it near {ng['cpu'] / core:.2f}×; {tx}× takes "
                       f"≤ {need:.1f} µs of that core per poll." + takes(data, r["name"], r["strategy"], r, need, hz))
        tp = data["target_p99_ms"].get(r["strategy"])
        if tp and r["p99"] is not None and r["p99"] > tp:
            out.append(f"- {LABEL[r['name']]} {r['path']}: p99 {r['p99']:.2f} ms (target ≤ {tp}). Floor: wrk's p99 "
                       f"includes queueing behind 31 other connections; nginx `return 200`'s p99 in the same run is "
                       f"{fmt(ng.get('p99'), '.2f')} ms, so the rest is tessera's own time per poll "
                       f"({fmt(r['cpu'], '.1f')} µs CPU) times the queue, and the machine's other load.")
        if r.get("x_peer") is not None and r["x_peer"] < 15:
            out.append(f"- {LABEL[r['name']]} {r['path']}: {r['x_peer']:.1f}× the Express peer (target 15). The "
                       f"peer's CPU per poll and tessera's are both in the table; at a fixed core, the ratio is "
                       f"bounded by theirs: reaching 15× takes tessera's CPU per poll down by the same factor.")
    for r in data.get("pollers") or []:
        if r["kind"] == "spread" and (r["p99_ms"] > 5 or r["answered"] != r["sent"] or r["rss_peak_kb"] > 200 * 1024):
            out.append(f"- spread pollers: p99 {r['p99_ms']:.2f} ms, {r['answered']}/{r['sent']} answered, RSS "
                       f"{r['rss_peak_kb'] / 1024:.0f} MiB (targets 5 ms, all, 200 MB).")
    mm = data.get("memory")
    if mm and mm["bytes_per_entry"] - mm["payload_bytes"] > 256:
        out.append(f"- near-cache: ≈ {mm['bytes_per_entry'] - mm['payload_bytes']:.0f} bytes of overhead per "
                   f"session (target 256). Floor: each entry holds a whole `tess_session_t` "
                   f"({mm['session_struct_bytes']} bytes of fixed-size id, user id and role arrays) plus the key, "
                   f"the entry header and the allocator's rounding; storing the strings at their length (≈ 60 bytes "
                   f"for a login's session) would take the overhead under 256.")
    if not out:
        return []
    return ["### Targets missed in this run, and their floors", ""] + out + [""]


def markdown(data):
    s, rows, nginx, healthz = build(data)
    m, st = data["machine"], data["settings"]
    out = []
    title = {"full": "", "quick": " (--quick)", "smoke": " (--smoke)"}[data["mode"]]
    out.append(f"# bench/run{title}: {data['started']}")
    out.append("")
    if data.get("note"):
        out.append(f"**{data['note']}**")
        out.append("")
    out.append(f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']}, Linux {m['kernel']}; checkout "
               f"{m['git']}; {m['wrk']}; {m['redis']}; {m['postgres']}; {m['nginx']}. Load average at start "
               f"{m['load_start']}, at the end {m['load_end']} (other work on the machine shows here). "
               f"Elapsed {data['elapsed_s']} s.")
    out.append("")
    out.append(f"Settings: {st['sessions']:,} seeded sessions per store, the cookie rotating over all of them; "
               f"{st['passes']} interleaved pass(es) of `wrk -t1 -c{st['conns']} -d{st['duration_s']}s`; "
               f"`tessera serve --threads 1` on CPU {st['cpu_server']}, the load generators on CPU "
               f"{st['cpu_load']}, Redis and PostgreSQL on CPU {st['cpu_store']}. req/s: median of the passes "
               f"(min–max); latencies: wrk's, at {st['conns']} connections in flight (queueing included); CPU: "
               f"utime+stime from /proc ÷ requests. cached: `CACHE_TTL={st.get('cache_ttl_s', 300)}`"
               + (f" and `CACHE_L2_TTL={st['cache_l2_ttl_s']}`" if st.get("cache_l2_ttl_s") else
                  " (`CACHE_L2_TTL` left at 300 s: its copies' expiry in Redis evicts the near-cache's entries, "
                  "so each pass started with it empty and warmed it again)")
               + ", longer than the run, so that no pass starts with entries aged out in the gap since the last "
               "(a poller polling steadily misses once per CACHE_TTL).")
    out.append("")
    if data["problems"]:
        out.append("## Problems (runs with errors are failures, not numbers)")
        out.append("")
        for p in data["problems"]:
            out.append(f"- {p}")
        out.append("")
    if data.get("notes"):
        out.append("Notes: " + " · ".join(data["notes"]))
        out.append("")
    cm = [(n, c) for n, c in data["configs"].items() if c.get("warm_polls")]
    if cm:
        out.append("Near-cache warm-up (cached: repeated until it misses under 1 % of the polls): " + "; ".join(
            f"{n} {c['warm_polls']:,.0f} polls, {(c.get('metrics') or {}).get('cache_misses_total', 0):,.0f} misses and "
            f"{(c.get('metrics') or {}).get('cache_invalidations_total', 0):,.0f} invalidations by the end of the run"
            for n, c in cm) + ".")
        out.append("")
    out.append("## Polling `GET /api/prechats/{id}/meta` end to end")
    out.append("")
    out.append("| strategy | path | req/s (min–max) | × nginx | target × nginx | × /healthz | p50 / p90 / p99 ms "
               "| p99 target | × peer (≥ 15) | server µs CPU/req | store µs CPU/req | note's claim |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tx = data["target_x_nginx"].get(r["name"])
        tp = data["target_p99_ms"].get(r["strategy"])
        met = lambda ok: "" if ok is None else (" ✓" if ok else " ✗")  # noqa: E731
        xok = None if r["x_nginx"] is None or tx is None else r["x_nginx"] >= tx
        pok = None if r["p99"] is None or tp is None else r["p99"] <= tp
        rps = "FAILED" if r["rps"] is None else f"{r['rps']:.0f} ({r['lo']:.0f}–{r['hi']:.0f})"
        if r["failed"] and r["rps"] is not None:
            rps += f", {r['failed']} failed"
        out.append(f"| {LABEL[r['name']]} | {r['path']} | {rps} | {fmt(r['x_nginx'], '.2f')} | "
                   f"{'–' if tx is None else f'≥ {tx}'}{met(xok)} | {fmt(r['x_healthz'], '.2f')} | {fmt(r['p50'], '.2f')} / "
                   f"{fmt(r['p90'], '.2f')} / {fmt(r['p99'], '.2f')} | {'–' if tp is None else f'≤ {tp}'}{met(pok)} | "
                   f"{fmt(r['x_peer'], '.1f')}{met(None if r['x_peer'] is None else r['x_peer'] >= 15)} | "
                   f"{fmt(r['cpu'], '.1f')} | "
                   f"{fmt(r['store'], '.1f')} | {data['claims'].get(r['strategy'], '–')} |")
    out.append("")
    out += missed(data, s, rows)
    if data.get("lookups"):
        out.append("## Lookup cost at library level (no HTTP)")
        out.append("")
        out.append("`bench_lookup`: one `tess_auth_check` at a time on a poll loop over the seeded sessions' cookies "
                   "(cached: the near-cache filled first by one lookup of each, its time shown as *warm*); p50/p99 of "
                   "wall time per lookup; CPU of the lookup process and of the store per lookup.")
        out.append("")
        out.append("| strategy | lookups | failures | p50 µs | p90 µs | p99 µs | max µs | lookup CPU µs | store CPU µs "
                   "| warm (miss) mean µs | note's claim |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        by = {d["target"]: d for d in data["lookups"]}
        for name in ORDER:
            d = by.get(name)
            if not d:
                continue
            strat = data["configs"].get(name, {}).get("strategy", "")
            warm = f"{d['warm_mean_ns'] / 1000:.1f}" if strat == "cached" else "–"
            fails = str(d["failures"]) + (f" {d['failure_kinds']}" if d["failures"] else "")
            store = "–" if d.get("store_cpu_ns") is None else f"{d['store_cpu_ns'] / 1000:.1f}"
            out.append(f"| {LABEL[name]} | {d['lookups']:,} | {fails} | {d['p50_ns'] / 1000:.2f} | "
                       f"{d['p90_ns'] / 1000:.2f} | {d['p99_ns'] / 1000:.2f} | {d['max_ns'] / 1000:.1f} | "
                       f"{d['cpu_ns'] / 1000:.2f} | {store} | {warm} | {data['claims'].get(strat, '–')} |")
        out.append("")
    out.append("## Roofs, in the same run")
    out.append("")
    out.append("| roof | req/s (min–max) | p50 / p99 ms | server µs CPU/req | store µs CPU/op |")
    out.append("|---|---|---|---|---|")
    for key, label in ((("nginx", "return200"), "nginx `return 200`"), (("healthz", "healthz"), "tessera `/healthz`"),
                       (("redis-benchmark", "GET"), f"`redis-benchmark -t get -c {st['conns']}`"),
                       (("pgbench", "-S"), f"`pgbench -S -M prepared -c {st['conns']}`"),
                       (("pingpong", "tcp"), f"loopback TCP ping-pong, 128 bytes, {st['conns']} connections")):
        if key not in s:
            continue
        x = s[key]
        rps = "FAILED" if x["rps"] is None else f"{x['rps']:.0f} ({x['lo']:.0f}–{x['hi']:.0f})"
        out.append(f"| {label} | {rps} | {fmt(x['p50'], '.2f')} / {fmt(x['p99'], '.2f')} | {fmt(x['cpu'], '.1f')} "
                   f"| {fmt(x['store'], '.1f')} |")
    out.append("")
    pg = s.get(("pgbench", "-S"), {}).get("store")
    lines = []
    for name in ("db-pg", "cached-pg", "nextauth-db-pg"):
        for path in ("304", "200"):
            x = s.get((name, path))
            if x and x["store"] is not None and pg:
                lines.append(f"- {LABEL[name]} {path}: PostgreSQL (+ Redis for cached) CPU per poll "
                             f"{x['store']:.1f} µs = {x['store'] / pg:.2f}× pgbench -S's {pg:.1f} µs per "
                             f"transaction (target for db: ≤ 0.33×)")
    if lines:
        out.append("Store CPU per poll against pgbench's per transaction:")
        out.append("")
        out += lines
        out.append("")
    mem = [(n, c) for n, c in data["configs"].items() if c.get("rss_end_kb") and c.get("rss_seeded_kb")]
    if mem:
        out.append("## Server memory")
        out.append("")
        out.append("| configuration | RSS after seeding | RSS after the load |")
        out.append("|---|---|---|")
        for n, c in mem:
            out.append(f"| {n} | {c['rss_seeded_kb'] / 1024:.1f} MiB | {c['rss_end_kb'] / 1024:.1f} MiB |")
        out.append("")
    if data.get("pollers"):
        out.append("## Keep-alive pollers (cached strategy on SQLite, one `tessera serve --threads 1`)")
        out.append("")
        out.append("`push_load poll`: each poller polls the meta URL with If-None-Match once a second over its own "
                   "keep-alive connection; connections opened 2,000 a second, then measured. *spread*: the polls "
                   "evenly over the second; *burst*: every poller at the same instant. Latency: from a poll's send to "
                   "its whole answer; server CPU per poll over the whole run, ramp and connection set-up included. Targets (spread): every poll answered, p99 ≤ 5 ms, RSS ≤ 200 MB.")
        out.append("")
        out.append("| case | pollers | seconds | polls due | sent | answered | errors | p50 ms | p99 ms | max ms "
                   "| server µs CPU/poll | RSS peak |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in data["pollers"]:
            out.append(f"| {r['kind']} | {r['tabs']:,} | {r['seconds']} | {r['expected']:,} | {r['sent']:,} | "
                       f"{r['answered']:,} | {r['errors']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                       f"{r['max_ms']:.1f} | {r['server_cpu_us']:.1f} | {r['rss_peak_kb'] / 1024:.1f} MiB |")
        out.append("")
    out += waiting_section(data.get("waiting") or [])
    if data.get("memory"):
        mm = data["memory"]
        over = mm["bytes_per_entry"] - mm["payload_bytes"]
        out.append("## Near-cache memory")
        out.append("")
        out.append(f"`bench_lookup --memory`: {mm['entries']:,} sessions (43-byte id, numeric user id, role) in one "
                   f"near-cache: RSS {mm['rss_before_kb'] / 1024:.1f} → {mm['rss_after_kb'] / 1024:.1f} MiB, "
                   f"**{mm['bytes_per_entry']:.0f} bytes per entry** (the cache's own accounting: "
                   f"{mm['accounted_per_entry']:.0f}); the session's data is {mm['payload_bytes']} bytes, so the "
                   f"overhead is ≈ {over:.0f} bytes per session (target ≤ 256"
                   f"{' ✓' if over <= 256 else ' ✗'}); `tess_session_t` alone is {mm['session_struct_bytes']} bytes "
                   f"(fixed-size id, user id and role arrays).")
        out.append("")
    jv = data.get("jwt_verify")
    if jv:
        ratio = jv["verify_ns"] / jv["roof_ns"]
        out.append("## JWT verify against the HMAC roof (`bench_jwt`, best of 7 rounds)")
        out.append("")
        out.append(f"`tess_jwt_verify` of a 252-byte token: **{jv['verify_ns']:.0f} ns** (target ≤ 400"
                   f"{' ✓' if jv['verify_ns'] <= 400 else ' ✗'}), {ratio:.2f}× the pre-keyed HMAC-SHA256 of its "
                   f"signing input ({jv['roof_ns']:.0f} ns; target ≤ 1.5×{' ✓' if ratio <= 1.5 else ' ✗'}).")
        if jv["verify_ns"] > 400 or ratio > 1.5:
            out.append(f"Floor: the HMAC itself ({jv['roof_ns']:.0f} ns). The claims are already read in place (no "
                       f"JSON tree, integers without `strtod`); perf puts the other {jv['verify_ns'] - jv['roof_ns']:.0f} "
                       f"ns in about equal parts in base64url-decoding the payload and the signature (213 "
                       f"characters, a table lookup each) and in the claims scan (a byte at a time), then the "
                       f"constant-time compare and the header check. Reaching 1.5× would take both in one pass "
                       f"over the payload, or a vectorised base64 decoder (bench/README.md).")
        out.append("")
        out.append("```")
        out.append(jv["output"])
        out.append("```")
        out.append("")

    out.append("## Commands")
    out.append("")
    out.append("```")
    out.append(data.get("command") or " ".join(data["argv"]))
    out.append("```")
    out.append("")
    out.append(f"Raw numbers of every run: `{os.path.basename(data.get('base', 'results'))}.json`; chart: "
               f"`{os.path.basename(data.get('base', 'results'))}.svg`.")
    return "\n".join(out) + "\n"


def svg(data):
    s, rows, nginx, healthz = build(data)
    bars = [r for r in rows]
    # room for the longest label on the left and for a bar's value text past the longest bar (12 px sans-serif:
    # at most ≈ 7 px a character)
    left = 20 + 7 * max([len(LABEL[r["name"]] + " " + r["path"]) for r in bars] + [30])
    plot, barh, gap, top = 560, 18, 6, 60
    w = left + plot + 7 * len("0.00× (000000/s, p99 00.00 ms)") + 20
    h = top + len(bars) * (barh + gap) + 50
    maxx = max([1.0] + [r["x_nginx"] or 0 for r in bars] + [data["target_x_nginx"].get(r["name"], 0) for r in bars])
    scale = plot / maxx
    e = html.escape
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="10" y="20" font-size="15" font-weight="bold">{e("Polls per second as a share of nginx return 200")}'
         f'</text>',
         f'<text x="10" y="40" fill="#555">{e(data["started"] + " · " + data["mode"] + " · " + (data.get("note") or ""))}'
         f' · nginx {fmt(nginx)} req/s · tick = target</text>']
    for x in (0.25, 0.5, 0.75, 1.0):
        if x <= maxx:
            X = left + x * scale
            o.append(f'<line x1="{X:.1f}" y1="{top - 5}" x2="{X:.1f}" y2="{h - 40}" stroke="#ddd"/>')
            o.append(f'<text x="{X:.1f}" y="{h - 25}" text-anchor="middle" fill="#555">{x:.2f}×</text>')
    for i, r in enumerate(bars):
        y = top + i * (barh + gap)
        color = "#4a7fb5" if r["path"] == "304" else "#8fb3d9"
        o.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{e(LABEL[r["name"]] + " " + r["path"])}</text>')
        if r["x_nginx"] is None:
            o.append(f'<text x="{left + 4}" y="{y + 13}" fill="#b00">FAILED</text>')
        else:
            o.append(f'<rect x="{left}" y="{y}" width="{r["x_nginx"] * scale:.1f}" height="{barh}" fill="{color}"/>')
            o.append(f'<text x="{left + r["x_nginx"] * scale + 4:.1f}" y="{y + 13}">{r["x_nginx"]:.2f}× '
                     f'({r["rps"]:.0f}/s, p99 {fmt(r["p99"], ".2f")} ms)</text>')
        t = data["target_x_nginx"].get(r["name"])
        if t:
            X = left + t * scale
            o.append(f'<line x1="{X:.1f}" y1="{y - 2}" x2="{X:.1f}" y2="{y + barh + 2}" stroke="#c33" '
                     f'stroke-width="2"/>')
    o.append(f'<text x="10" y="{h - 8}" fill="#555">dark: 304 path (If-None-Match), light: 200 path; '
             f'{data["settings"]["sessions"]:,} sessions per store; see the .md for CPU per request</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def readme_table(data, md_name):
    """The short table the README shows: per strategy, the 304 path (what a polling tab sends)."""
    s, rows, nginx, healthz = build(data)
    by = {d["target"]: d for d in data.get("lookups") or []}
    st = data["settings"]
    out = [f"Latest: `bench/results/{md_name}.md` ({data['mode']} run, {data['started'][:10]}"
           + (f"; noted: {data['note']}" if data.get("note") else "")
           + f"; chart: [`{md_name}.svg`](bench/results/{md_name}.svg)). 304 path, `wrk -c{st['conns']}`, "
           f"{st['sessions']:,} sessions per store, one server thread:", "",
           "| strategy | polls/s × nginx `return 200` | p99 ms | server µs CPU/poll | × Express peer | library lookup p50 / "
           "p99 µs | note's claim |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["path"] != "304" or r["name"].startswith("peer"):
            continue
        d = by.get(r["name"])
        lk = f"{d['p50_ns'] / 1000:.1f} / {d['p99_ns'] / 1000:.1f}" if d else "–"
        out.append(f"| {LABEL[r['name']]} | {fmt(r['x_nginx'], '.2f')} | {fmt(r['p99'], '.2f')} | "
                   f"{fmt(r['cpu'], '.1f')} | {fmt(r['x_peer'], '.1f')} | {lk} | "
                   f"{data['claims'].get(r['strategy'], '–')} |")
    return "\n".join(out) + "\n"


def update_readme(data, base, readme):
    """Rewrites README's text between <!-- bench:begin --> and <!-- bench:end --> with the table."""
    with open(readme) as f:
        text = f.read()
    a, b = "<!-- bench:begin -->\n", "<!-- bench:end -->"
    if a not in text or b not in text:
        raise SystemExit(f"bench/report.py: no {a.strip()} ... {b} markers in {readme}")
    i, j = text.index(a) + len(a), text.index(b)
    text = text[:i] + readme_table(data, os.path.basename(base)) + text[j:]
    with open(readme, "w") as f:
        f.write(text)


def write(data, base):
    data["base"] = base
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(markdown(data))
    with open(base + ".svg", "w") as f:
        f.write(svg(data))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--readme"]
    if len(args) != 1 or not args[0].endswith(".json"):
        sys.exit("usage: python3 bench/report.py [--readme] RESULTS.json")
    with open(args[0]) as f:
        d = json.load(f)
    write(d, args[0][: -len(".json")])
    if "--readme" in sys.argv:
        update_readme(d, args[0][: -len(".json")], os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                                 "README.md"))
