/*
 * HTTP limits (limits.h): the request-head bound, connections per client address, JSON for h2o's own error
 * answers, and the h2o settings that bound a slow client.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/limits.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

/* ---- connections per client address ---------------------------------------------------------------------- */

/*
 * Open addressing with linear probing and backward-shift deletion. Every address in the table has at least
 * one open connection, and open connections are bounded by the connection bound, so a table of twice that
 * many slots never fills; it is still checked (a full table refuses: fail closed).
 */
typedef struct slot {
    addr_key_t key; /* the address */
    int count;      /* its open connections; 0: the slot is free */
} slot_t;

struct addr_limit {
    pthread_mutex_t lock;         /* guards the table */
    slot_t *slots;                /* mask + 1 of them */
    size_t mask;                  /* slots - 1 (a power of two minus one) */
    size_t used;                  /* slots in use */
    int per_addr;                 /* connections allowed per address */
    uint64_t seed[2];             /* random: an attacker cannot aim addresses at one probe chain */
    atomic_uint_fast64_t refused; /* connections refused (any thread writes, /metrics reads) */
    char refusal[256];            /* the fixed answer to a refused connection */
    size_t refusal_len;           /* its length */
};

static const char REFUSAL_BODY[] =
    "{\"error\":\"too_many_connections\",\"message\":\"too many open connections from this address\"}";

int addr_limit_new(addr_limit_t **out, int per_addr, int max_conns)
{
    addr_limit_t *t;
    size_t cap = 64;
    uint8_t seed[16];

    *out = NULL;
    while (cap < 2 * (size_t)(max_conns > 0 ? max_conns : 1))
        cap <<= 1;
    if ((t = calloc(1, sizeof(*t))) == NULL || (t->slots = calloc(cap, sizeof(*t->slots))) == NULL ||
        tess_random_bytes(seed, sizeof(seed)) != 0) {
        if (t != NULL)
            free(t->slots);
        free(t);
        return TESS_ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->mask = cap - 1;
    t->per_addr = per_addr;
    memcpy(t->seed, seed, sizeof(t->seed));
    atomic_init(&t->refused, 0);
    t->refusal_len = (size_t)snprintf(t->refusal, sizeof(t->refusal),
                                      "HTTP/1.1 429 Too Many Requests\r\nServer: tessera\r\n"
                                      "Content-Type: application/json\r\nCache-Control: no-store\r\n"
                                      "Retry-After: 1\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                                      sizeof(REFUSAL_BODY) - 1, REFUSAL_BODY);
    *out = t;
    return 0;
}

void addr_limit_free(addr_limit_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

int addr_key_of(const struct sockaddr *sa, socklen_t len, addr_key_t *key)
{
    memset(key, 0, sizeof(*key));
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        key->b[10] = key->b[11] = 0xff;
        memcpy(key->b + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(key->b, &in6->sin6_addr, 16); /* the same key as the IPv4 address */
        } else {
            memcpy(key->b, &in6->sin6_addr, 8); /* one host usually holds a whole /64 */
        }
        return 0;
    }
    return -1;
}

static size_t slot_of(const addr_limit_t *t, const addr_key_t *key)
{
    uint64_t a, b, h;
    memcpy(&a, key->b, 8);
    memcpy(&b, key->b + 8, 8);
    h = (a ^ t->seed[0]) * 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 29) ^ b ^ t->seed[1]) * 0xbf58476d1ce4e5b9ULL;
    return (size_t)(h ^ (h >> 32)) & t->mask;
}

/* The slot holding `key`, or the free slot where it would go. Called locked. */
static size_t find(const addr_limit_t *t, const addr_key_t *key)
{
    size_t i = slot_of(t, key);
    while (t->slots[i].count != 0 && memcmp(&t->slots[i].key, key, sizeof(*key)) != 0)
        i = (i + 1) & t->mask;
    return i;
}

int addr_limit_acquire(addr_limit_t *t, const addr_key_t *key)
{
    int rc = -1;
    size_t i;

    pthread_mutex_lock(&t->lock);
    i = find(t, key);
    if (t->slots[i].count == 0) {
        if (t->used >= (t->mask + 1) / 2)
            goto out; /* cannot happen within the connection bound; refuse rather than overfill */
        t->slots[i].key = *key;
        ++t->used;
    } else if (t->slots[i].count >= t->per_addr) {
        goto out;
    }
    ++t->slots[i].count;
    rc = 0;
out:
    pthread_mutex_unlock(&t->lock);
    if (rc != 0)
        atomic_fetch_add_explicit(&t->refused, 1, memory_order_relaxed);
    return rc;
}

void addr_limit_release(addr_limit_t *t, const addr_key_t *key)
{
    size_t i, j;

    pthread_mutex_lock(&t->lock);
    i = find(t, key);
    if (t->slots[i].count > 0 && --t->slots[i].count == 0) {
        /* Backward shift: pull later entries of the probe chain into the hole, so lookups never stop early. */
        --t->used;
        for (j = (i + 1) & t->mask; t->slots[j].count != 0; j = (j + 1) & t->mask) {
            size_t home = slot_of(t, &t->slots[j].key);
            /* `j` may move to `i` unless its home lies cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                continue;
            t->slots[i] = t->slots[j];
            i = j;
        }
        memset(&t->slots[i], 0, sizeof(t->slots[i]));
    }
    pthread_mutex_unlock(&t->lock);
}

int addr_limit_count(addr_limit_t *t, const addr_key_t *key)
{
    int n;
    pthread_mutex_lock(&t->lock);
    n = t->slots[find(t, key)].count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

uint64_t addr_limit_refused(addr_limit_t *t)
{
    return t != NULL ? atomic_load_explicit(&t->refused, memory_order_relaxed) : 0;
}

/*
 * The refused connection is fresh, so its send buffer takes the whole answer without blocking. What the client
 * already sent is read and dropped first: closing with unread input would reset the connection, and the client
 * could lose the answer.
 */
static void refuse(addr_limit_t *t, h2o_socket_t *sock)
{
    int fd = h2o_socket_get_fd(sock);
    char scratch[4096];
    size_t drained = 0;
    ssize_t n;

    (void)send(fd, t->refusal, t->refusal_len, MSG_DONTWAIT | MSG_NOSIGNAL); /* closed below, sent or not */
    while (drained < 65536 && (n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT)) > 0)
        drained += (size_t)n;
    shutdown(fd, SHUT_WR);
    h2o_socket_close(sock);
}

int addr_limit_admit(addr_limit_t *t, h2o_socket_t *sock, addr_key_t *key)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (t == NULL || getpeername(h2o_socket_get_fd(sock), (struct sockaddr *)&ss, &len) != 0 ||
        addr_key_of((struct sockaddr *)&ss, len, key) != 0)
        return 0;
    if (addr_limit_acquire(t, key) == 0)
        return 1;
    refuse(t, sock);
    return -1;
}

/* ---- the request-head bound ------------------------------------------------------------------------------ */

int limits_check_head(tess_req_t *r)
{
    h2o_req_t *req = r->req;
    const tess_config_t *cfg = &r->th->srv->cfg;
    /* The request line as sent (method, target, version) and the fields h2o keeps apart (Host, Upgrade). */
    size_t bytes = req->input.method.len + req->input.path.len + sizeof(" HTTP/1.1\r\n") + req->input.authority.len +
                   req->upgrade.len;
    const char *why = NULL;

    if (req->headers.size > (size_t)cfg->max_headers) {
        why = "too many header fields";
    } else {
        for (size_t i = 0; i < req->headers.size; ++i)
            bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4; /* ": ", CRLF */
        if (bytes > cfg->max_header_bytes)
            why = "request header fields too large";
    }
    if (why == NULL)
        return 0;
    req->http1_is_persistent = 0; /* a client this far off gets no second request on the connection */
    send_error(r, 431, "header_too_large", why);
    return -1;
}

/* ---- JSON for the errors h2o answers itself --------------------------------------------------------------- */

/*
 * h2o answers some requests before any handler runs (h2o_send_error_*: a broken Content-Length or chunked
 * body, an unknown Transfer-Encoding, a body over its bound, an unknown Expect), with a text/plain body, on
 * the host's fallback path. A filter there turns that answer into tessera's JSON error: same status, the
 * code from the status, h2o's text as the message.
 */
typedef struct json_ostream {
    h2o_ostream_t super; /* first member */
    int done;            /* the body was sent */
} json_ostream_t;

static const char *code_of(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 413:
        return "too_large";
    case 417:
        return "expectation_failed";
    case 431:
        return "header_too_large";
    default:
        return status >= 500 ? "unavailable" : "bad_request";
    }
}

static h2o_iovec_t error_body(h2o_req_t *req, const h2o_iovec_t *bufs, size_t bufcnt)
{
    char text[256];
    size_t n = 0;
    cJSON *o = cJSON_CreateObject();
    char *json;
    h2o_iovec_t body;

    for (size_t i = 0; i < bufcnt && n < sizeof(text) - 1; ++i) {
        size_t k = bufs[i].len < sizeof(text) - 1 - n ? bufs[i].len : sizeof(text) - 1 - n;
        memcpy(text + n, bufs[i].base, k);
        n += k;
    }
    text[n] = '\0';
    if (n == 0 || strlen(text) != n) /* HEAD (no body), or bytes a message should not have */
        snprintf(text, sizeof(text), "%s", req->res.reason != NULL ? req->res.reason : "error");
    cJSON_AddStringToObject(o, "error", code_of(req->res.status));
    cJSON_AddStringToObject(o, "message", text);
    if ((json = cJSON_PrintUnformatted(o)) == NULL)
        h2o_fatal("out of memory");
    cJSON_Delete(o);
    body = h2o_strdup(&req->pool, json, strlen(json));
    free(json);
    return body;
}

static void json_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                            h2o_send_state_t state)
{
    json_ostream_t *o = (json_ostream_t *)self;
    h2o_iovec_t body;

    /* h2o's error answers are one h2o_send_inline: the whole text comes in the first (final) call. */
    if (o->done) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    o->done = 1;
    body = error_body(req, bufs, bufcnt);
    req->res.content_length = body.len; /* the headers leave with the first bytes, after this */
    if (bufcnt == 0)
        h2o_ostream_send_next(self, req, NULL, 0, state); /* HEAD */
    else
        h2o_ostream_send_next(self, req, &body, 1, state);
}

static void json_error_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    (void)self;
    if (req->res.status >= 400 &&
        (i < 0 || !h2o_lcstris(req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len,
                               H2O_STRLIT("application/json")))) {
        json_ostream_t *o;
        if (i >= 0)
            req->res.headers.entries[i].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        o = (json_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = json_error_send;
        o->done = 0;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- h2o's settings ------------------------------------------------------------------------------------- */

void limits_configure(server_t *srv, h2o_hostconf_t *host)
{
    h2o_filter_t *f;

    /*
     * h2o 2.2's HTTP/1 request timeout runs from the moment a connection may send a request (accepted, or its
     * previous answer sent) until the head and body are in: it cuts slow heads, slow bodies and idle
     * keep-alive connections alike. HTTP/2's idle timeout only runs while no request is in progress.
     */
    srv->h2o.http1.req_timeout = (uint64_t)srv->cfg.header_timeout_ms;
    srv->h2o.http2.idle_timeout = (uint64_t)srv->cfg.header_timeout_ms;
    /* Off: an Upgrade: h2c is ignored (HTTP/1.1 answers) and an HTTP/2 preface is a malformed request. */
    srv->h2o.http1.upgrade_to_http2 = srv->cfg.h2c;
    f = h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->on_setup_ostream = json_error_setup;
}
