/*
 * The session model: lifetimes, throttled touch, and the connect-redis / connect-pg-simple JSON form.
 *
 * Round trip rules (from_json -> to_json):
 *   - modelled fields (userId, role, createdAt, absoluteExpiresAt, cookie.expires) come from the struct;
 *   - every other top-level field is kept verbatim in extra_json and written back;
 *   - two modelled fields whose original form the struct cannot carry are kept in extra_json too, so an
 *     express-session document survives a rewrite unchanged: a numeric "userId" (written back as a number
 *     while the struct still holds the same decimal id) and a "cookie" object whose attributes differ from
 *     the defaults we write (written back with "expires" replaced by expires_ms).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "identity.h"
#include "session_flat.h"
#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/session.h"

/* 9999-12-31T23:59:59.999Z: the last expiry a document's four-digit cookie.expires holds. */
#define ISO_DATE_MAX_MS INT64_C(253402300799999)

#define DEFAULT_TTL_S (30 * 24 * 3600)
#define DEFAULT_IDLE_S (7 * 24 * 3600)
#define DEFAULT_TOUCH_INTERVAL_S 3600
#define JSON_DEPTH_MAX 32
#define MS_PER_S INT64_C(1000)
/* Largest integer a double (and JavaScript) carries exactly: 2^53 - 1. */
#define JSON_INT_MAX 9007199254740991.0

void tess_session_policy_default(tess_session_policy_t *p)
{
    p->ttl_s = DEFAULT_TTL_S;
    p->idle_s = DEFAULT_IDLE_S;
    p->touch_interval_s = DEFAULT_TOUCH_INTERVAL_S;
}

/* Idle lifetime in ms, capped by the absolute lifetime. */
static int64_t idle_ms(const tess_session_policy_t *p)
{
    int64_t idle = p->idle_s;
    if (p->ttl_s > 0 && (idle <= 0 || idle > p->ttl_s))
        idle = p->ttl_s;
    return idle * MS_PER_S;
}

/* 1 when `v` fits a NUL-terminated field of `max` bytes: 1..max bytes, no NUL inside. */
static int str_field_ok(tess_str_t v, size_t max)
{
    return v.len > 0 && v.len <= max && memchr(v.ptr, '\0', v.len) == NULL;
}

int tess_session_init(tess_session_t *s, const tess_session_policy_t *p, tess_str_t user_id, tess_str_t role,
                      int64_t now_ms)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if (p == NULL || p->ttl_s <= 0 || role.len == 0 || !tess_session_identity_valid(user_id, role))
        return TESS_EINVAL;
    if ((rc = tess_id_new(s->id)) != 0)
        goto out;
    memcpy(s->user_id, user_id.ptr, user_id.len);
    memcpy(s->role, role.ptr, role.len);
    s->created_ms = now_ms;
    s->absolute_expires_ms = now_ms + p->ttl_s * MS_PER_S;
    s->max_age_ms = idle_ms(p);
    s->expires_ms = now_ms + s->max_age_ms;
    if (s->expires_ms > s->absolute_expires_ms)
        s->expires_ms = s->absolute_expires_ms;
out:
    if (rc != 0)
        memset(s, 0, sizeof(*s));
    return rc;
}

void tess_session_clear(tess_session_t *s)
{
    if (s == NULL)
        return;
    free(s->extra_json);
    memset(s, 0, sizeof(*s));
}

int tess_session_copy(tess_session_t *dst, const tess_session_t *src)
{
    *dst = *src;
    if (src->extra_json != NULL && (dst->extra_json = strdup(src->extra_json)) == NULL) {
        memset(dst, 0, sizeof(*dst));
        return TESS_ENOMEM;
    }
    return 0;
}

int tess_session_expired(const tess_session_t *s, int64_t now_ms)
{
    return now_ms >= s->expires_ms || (s->absolute_expires_ms > 0 && now_ms >= s->absolute_expires_ms);
}

int tess_session_needs_touch(const tess_session_t *s, const tess_session_policy_t *p, int64_t now_ms,
                             int64_t *new_expires_ms)
{
    int64_t idle = s->max_age_ms > 0 ? s->max_age_ms : idle_ms(p), last_touch, next;

    *new_expires_ms = s->expires_ms;
    if (tess_session_expired(s, now_ms) || idle <= 0)
        return 0;
    /* The store only keeps the expiry: the last touch is when that expiry was set (never before creation). */
    last_touch = s->expires_ms - idle;
    if (s->created_ms > 0 && last_touch < s->created_ms)
        last_touch = s->created_ms;
    if (now_ms - last_touch < p->touch_interval_s * MS_PER_S)
        return 0;
    next = now_ms + idle;
    if (s->absolute_expires_ms > 0 && next > s->absolute_expires_ms)
        next = s->absolute_expires_ms;
    if (next > ISO_DATE_MAX_MS)
        next = ISO_DATE_MAX_MS; /* a huge originalMaxAge: stay inside what cookie.expires can say */
    if (next <= s->expires_ms)
        return 0; /* pinned at the absolute expiry: nothing to move */
    *new_expires_ms = next;
    return 1;
}

/* ---- to_json ------------------------------------------------------------------------------------------ */

/* The cookie attributes we write when the document brought none of its own (express-session defaults). */
static cJSON *default_cookie(const tess_session_t *s)
{
    cJSON *c = cJSON_CreateObject();
    if (c == NULL)
        return NULL;
    /* express-session extends a session by originalMaxAge on every request it sees: the idle window. */
    if (s->max_age_ms > 0) {
        if (cJSON_AddNumberToObject(c, "originalMaxAge", (double)s->max_age_ms) == NULL)
            goto fail;
    } else if (cJSON_AddNullToObject(c, "originalMaxAge") == NULL) {
        goto fail;
    }
    if (cJSON_AddNullToObject(c, "expires") == NULL || cJSON_AddFalseToObject(c, "secure") == NULL ||
        cJSON_AddTrueToObject(c, "httpOnly") == NULL || cJSON_AddStringToObject(c, "path", "/") == NULL ||
        cJSON_AddStringToObject(c, "sameSite", "lax") == NULL)
        goto fail;
    return c;
fail:
    cJSON_Delete(c);
    return NULL;
}

/* 1 when `num` is a JSON integer whose decimal rendering is `text`. */
static int number_renders_as(const cJSON *num, const char *text)
{
    char buf[32];
    if (!cJSON_IsNumber(num) || num->valuedouble != floor(num->valuedouble) || fabs(num->valuedouble) > JSON_INT_MAX)
        return 0;
    snprintf(buf, sizeof(buf), "%lld", (long long)num->valuedouble);
    return strcmp(buf, text) == 0;
}

static int is_modelled_key(const char *k)
{
    return strcmp(k, "cookie") == 0 || strcmp(k, "userId") == 0 || strcmp(k, "role") == 0 ||
           strcmp(k, "createdAt") == 0 || strcmp(k, "absoluteExpiresAt") == 0;
}

int tess_session_to_json(const tess_session_t *s, char **out, size_t *outlen)
{
    cJSON *root = NULL, *extra = NULL, *cookie = NULL, *item, *next;
    char iso[32];
    int rc = TESS_ENOMEM;

    *out = NULL;
    if (outlen != NULL)
        *outlen = 0;
    if (s->extra_json != NULL) {
        extra = cJSON_Parse(s->extra_json);
        if (!cJSON_IsObject(extra)) {
            rc = TESS_EBADFMT; /* extra_json is not ours to fix: refuse rather than drop fields */
            goto out;
        }
    }
    if ((root = cJSON_CreateObject()) == NULL)
        goto out;

    /* cookie: the document's own attributes when it brought some, else ours; "expires" is always ours. */
    cookie = extra != NULL ? cJSON_DetachItemFromObjectCaseSensitive(extra, "cookie") : NULL;
    if (cookie != NULL && !cJSON_IsObject(cookie)) {
        cJSON_Delete(cookie);
        cookie = NULL;
    }
    if (cookie == NULL && (cookie = default_cookie(s)) == NULL)
        goto out;
    if (!cJSON_AddItemToObject(root, "cookie", cookie)) {
        cJSON_Delete(cookie);
        goto out;
    }
    tess_iso_date(s->expires_ms, iso, sizeof(iso));
    if ((item = cJSON_CreateString(iso)) == NULL)
        goto out;
    if (!(cJSON_GetObjectItemCaseSensitive(cookie, "expires") != NULL
              ? cJSON_ReplaceItemInObjectCaseSensitive(cookie, "expires", item)
              : cJSON_AddItemToObject(cookie, "expires", item))) {
        cJSON_Delete(item);
        goto out;
    }

    /* userId: numeric when the document had it numeric and it still names the same user. */
    item = extra != NULL ? cJSON_GetObjectItemCaseSensitive(extra, "userId") : NULL;
    if (item != NULL && number_renders_as(item, s->user_id)) {
        if (cJSON_AddNumberToObject(root, "userId", item->valuedouble) == NULL)
            goto out;
    } else if (cJSON_AddStringToObject(root, "userId", s->user_id) == NULL) {
        goto out;
    }
    if (s->role[0] != '\0' && cJSON_AddStringToObject(root, "role", s->role) == NULL)
        goto out;
    if (s->created_ms > 0 && cJSON_AddNumberToObject(root, "createdAt", (double)s->created_ms) == NULL)
        goto out;
    if (s->absolute_expires_ms > 0 &&
        cJSON_AddNumberToObject(root, "absoluteExpiresAt", (double)s->absolute_expires_ms) == NULL)
        goto out;

    /* App fields, in their original order. */
    for (item = extra != NULL ? extra->child : NULL; item != NULL; item = next) {
        next = item->next;
        if (item->string == NULL || is_modelled_key(item->string))
            continue;
        cJSON_DetachItemViaPointer(extra, item);
        if (!cJSON_AddItemToObject(root, item->string, item)) {
            cJSON_Delete(item);
            goto out;
        }
    }

    if ((*out = cJSON_PrintUnformatted(root)) == NULL)
        goto out;
    if (outlen != NULL)
        *outlen = strlen(*out);
    rc = 0;
out:
    cJSON_Delete(root);
    cJSON_Delete(extra);
    return rc;
}

/* ---- from_json ---------------------------------------------------------------------------------------- */

/*
 * Cheap pre-scan before cJSON sees the text: bounds nesting (cJSON's own limit is 1000 and recursive) and
 * rejects raw NUL bytes (cJSON would stop there and report success on a prefix).
 */
static int json_prescan(tess_str_t json)
{
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < json.len; i++) {
        char c = json.ptr[i];
        if (c == '\0')
            return TESS_EBADFMT;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_DEPTH_MAX)
                return TESS_EBADFMT;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

/* An integral JSON number in [0, 2^53) as int64. Returns 0 or TESS_EBADFMT. */
static int json_int(const cJSON *item, int64_t *v)
{
    double d;
    if (!cJSON_IsNumber(item))
        return TESS_EBADFMT;
    d = item->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < 0 || d > JSON_INT_MAX)
        return TESS_EBADFMT;
    *v = (int64_t)d;
    return 0;
}

/*
 * 1 when `cookie` (without "expires") is exactly what default_cookie() would write for `s`: the same five
 * members with the same values, in any order. Read in place, with no tree built, since every lookup of a
 * stored session asks it. A repeated member makes it "not the default" (kept in extra_json).
 */
static int cookie_is_default(const cJSON *cookie, const tess_session_t *s)
{
    static const char *const names[] = {"originalMaxAge", "secure", "httpOnly", "path", "sameSite"};
    unsigned seen = 0;

    for (const cJSON *m = cookie->child; m != NULL; m = m->next) {
        size_t i;
        int ok;
        if (m->string == NULL)
            return 0;
        if (strcmp(m->string, "expires") == 0)
            continue;
        for (i = 0; i < sizeof(names) / sizeof(names[0]) && strcmp(m->string, names[i]) != 0; ++i)
            ;
        if (i == sizeof(names) / sizeof(names[0]) || (seen & (1u << i)) != 0)
            return 0;
        seen |= 1u << i;
        switch (i) {
        case 0: /* default_cookie() writes max_age_ms as a number, or null */
            ok = s->max_age_ms > 0 ? cJSON_IsNumber(m) && m->valuedouble == (double)s->max_age_ms : cJSON_IsNull(m);
            break;
        case 1:
            ok = cJSON_IsFalse(m);
            break;
        case 2:
            ok = cJSON_IsTrue(m);
            break;
        case 3:
            ok = cJSON_IsString(m) && strcmp(m->valuestring, "/") == 0;
            break;
        default:
            ok = cJSON_IsString(m) && strcmp(m->valuestring, "lax") == 0;
            break;
        }
        if (!ok)
            return 0;
    }
    return seen == (1u << (sizeof(names) / sizeof(names[0]))) - 1;
}

/*
 * The lifetimes of a read document, in both of tess_session_from_json's paths: its expiry (the store's own,
 * else cookie.expires), originalMaxAge and the creation it implies. 0, or TESS_EBADFMT.
 */
static int session_times(tess_session_t *s, int64_t expire_ms_hint, int64_t cookie_expires, int64_t max_age)
{
    /* Times past year 9999 are refused as for the expiry; they also pass 10^15, where cJSON prints 15
       significant digits and the number would not read back the same. */
    if (s->created_ms > ISO_DATE_MAX_MS || s->absolute_expires_ms > ISO_DATE_MAX_MS)
        return TESS_EBADFMT;
    /* The store's own expiry is the truth; cookie.expires is the document's copy of it. */
    s->expires_ms = expire_ms_hint > 0 ? expire_ms_hint : cookie_expires;
    if (s->expires_ms <= 0)
        return TESS_EBADFMT; /* no expiry anywhere: cannot be judged, fail closed */
    if (s->expires_ms > ISO_DATE_MAX_MS)
        return TESS_EBADFMT; /* a store's column past year 9999: cookie.expires could not hold it */
    /* Without absoluteExpiresAt (an express-session document) there is no absolute bound: the app that made
       it governs its life, and touches extend it by its own originalMaxAge, as express-session does. */
    if (max_age > 0)
        s->max_age_ms = max_age;
    if (s->created_ms == 0 && max_age > 0 && cookie_expires > max_age)
        s->created_ms = cookie_expires - max_age;
    return 0;
}

/* What both readers check first, with `s` zeroed: the bounds, the id, NUL bytes and depth. 0 or a TESS_E*. */
static int doc_precheck(tess_session_t *s, tess_str_t sid, tess_str_t json)
{
    memset(s, 0, sizeof(*s));
    if (json.len > TESS_SESSION_JSON_MAX)
        return TESS_ETOOBIG;
    if (!str_field_ok(sid, TESS_SID_MAX) || json.len == 0)
        return TESS_EBADFMT;
    return json_prescan(json);
}

int tess__session_from_json_cjson(tess_session_t *s, tess_str_t sid, tess_str_t json, int64_t expire_ms_hint)
{
    cJSON *root = NULL, *item, *next, *cookie;
    const char *end = NULL;
    int64_t cookie_expires = 0, max_age = -1;
    int keep_cookie = 0, rc = TESS_EBADFMT;

    if ((rc = doc_precheck(s, sid, json)) != 0)
        return rc;
    root = cJSON_ParseWithLengthOpts(json.ptr, json.len, &end, 0);
    if (root == NULL) {
        /* cJSON reports an allocation failure and a syntax error alike; a syntax error is far likelier. */
        rc = TESS_EBADFMT;
        goto out;
    }
    rc = TESS_EBADFMT;
    while (end != NULL && end < json.ptr + json.len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != json.ptr + json.len || !cJSON_IsObject(root))
        goto out;
    memcpy(s->id, sid.ptr, sid.len);

    /* userId: a non-empty string, or an integer (kept in extra so it is written back as a number). */
    item = cJSON_GetObjectItemCaseSensitive(root, "userId");
    if (cJSON_IsString(item)) {
        if (!str_field_ok(tess_str(item->valuestring), TESS_USER_ID_MAX))
            goto out;
        strcpy(s->user_id, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        if (!isfinite(d) || d != floor(d) || fabs(d) > JSON_INT_MAX)
            goto out;
        snprintf(s->user_id, sizeof(s->user_id), "%lld", (long long)d);
    } else {
        goto out; /* no user: not an authenticated session */
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "role");
    if (item != NULL && !cJSON_IsNull(item)) {
        if (!cJSON_IsString(item) || strlen(item->valuestring) > TESS_ROLE_MAX)
            goto out;
        strcpy(s->role, item->valuestring);
    }
    if (!tess_session_identity_valid(tess_str(s->user_id), tess_str(s->role))) {
        tess__identity_refused("a stored session");
        goto out;
    }

    cookie = cJSON_GetObjectItemCaseSensitive(root, "cookie");
    if (cookie != NULL && !cJSON_IsNull(cookie)) {
        if (!cJSON_IsObject(cookie))
            goto out;
        item = cJSON_GetObjectItemCaseSensitive(cookie, "expires");
        if (cJSON_IsString(item)) {
            if (tess_iso_date_parse(tess_str(item->valuestring), &cookie_expires) != 0)
                goto out;
        } else if (item != NULL && !cJSON_IsNull(item)) {
            goto out;
        }
        item = cJSON_GetObjectItemCaseSensitive(cookie, "originalMaxAge");
        if (item != NULL && !cJSON_IsNull(item) && json_int(item, &max_age) != 0)
            goto out;
        keep_cookie = 1;
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "createdAt");
    if (item != NULL && !cJSON_IsNull(item) && json_int(item, &s->created_ms) != 0)
        goto out;
    item = cJSON_GetObjectItemCaseSensitive(root, "absoluteExpiresAt");
    if (item != NULL && !cJSON_IsNull(item) && json_int(item, &s->absolute_expires_ms) != 0)
        goto out;
    if (session_times(s, expire_ms_hint, cookie_expires, max_age) != 0)
        goto out;

    /* Everything the struct does not carry goes to extra_json. */
    if (keep_cookie && cookie_is_default(cookie, s))
        cJSON_DeleteItemFromObjectCaseSensitive(root, "cookie");
    for (item = root->child; item != NULL; item = next) {
        next = item->next;
        if (item->string == NULL)
            continue;
        if ((strcmp(item->string, "userId") == 0 && cJSON_IsNumber(item)) || strcmp(item->string, "cookie") == 0)
            continue;
        if (is_modelled_key(item->string))
            cJSON_Delete(cJSON_DetachItemViaPointer(root, item));
    }
    if (root->child != NULL) {
        if ((s->extra_json = cJSON_PrintUnformatted(root)) == NULL) {
            rc = TESS_ENOMEM;
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc != 0)
        tess_session_clear(s);
    return rc;
}

int tess_session_from_json(tess_session_t *s, tess_str_t sid, tess_str_t json, int64_t expire_ms_hint)
{
    tess__flat_t flat;
    int rc;

    if ((rc = doc_precheck(s, sid, json)) != 0)
        return rc;
    /* The plain document, read in place (session_flat.c); anything else, with cJSON. */
    if ((rc = tess__session_flat_read(s, json, &flat)) == 0)
        return tess__session_from_json_cjson(s, sid, json, expire_ms_hint);
    if (rc == 1 && (rc = session_times(s, expire_ms_hint, flat.cookie_expires, flat.max_age)) == 0) {
        memcpy(s->id, sid.ptr, sid.len);
        s->extra_json = flat.extra;
        return 0;
    }
    free(flat.extra);
    memset(s, 0, sizeof(*s));
    return rc;
}
