/*
 * The application's own data: users, pre-chats and messages.
 *
 * Same shape as the session store interface (tessera/store.h): one const ops table per backend; every
 * operation returns 0 when started (the callback is then called exactly once, possibly before the call
 * returns) or a negative TESS_E* when it could not be started (no callback).
 * The result passed to a callback is borrowed for the duration of the call.
 *
 * A handle belongs to one thread (event loop).
 */
#ifndef TESSERA_SERVER_APPDB_H
#define TESSERA_SERVER_APPDB_H

#include <stdint.h>

#include "tessera/common.h"

#define APP_NAME_MAX 64     /* user name, bytes */
#define APP_TOPIC_MAX 200   /* pre-chat topic, bytes */
#define APP_BODY_MAX 4096   /* message body, bytes */
#define APP_CONTACT_MAX 200 /* a left message's contact (e-mail, phone), bytes */
#define APP_LIST_MAX 200    /* rows a list may return */
#define APP_EVENT_MAX 200   /* bytes in a change event's name */

typedef struct appdb appdb_t;

typedef struct appdb_user {
    int64_t id;                   /* 0 when not found */
    char name[APP_NAME_MAX + 1];  /* login name */
    char role[TESS_ROLE_MAX + 1]; /* "visitor" or "agent" */
    char pwhash[256];             /* argon2id encoded hash (libsodium crypto_pwhash_str) */
} appdb_user_t;

typedef struct appdb_prechat {
    int64_t id;                        /* pre-chat id */
    int64_t visitor_id;                /* user who opened it */
    int64_t agent_id;                  /* agent who joined it; 0 while waiting */
    char topic[APP_TOPIC_MAX + 1];     /* what the visitor asked about */
    char status[8];                    /* "waiting", "active", "closed" */
    int64_t created_ms;                /* creation time */
    int64_t updated_ms;                /* last change of anything the meta shows */
    int64_t message_count;             /* messages so far */
    int64_t last_message_id;           /* id of the newest message, 0 when none */
    int64_t queue_position;            /* 1-based among waiting pre-chats, oldest first; 0 when not waiting */
    int left_message;                  /* get / waiting list: the visitor left a message (prechat_leave) */
    char contact[APP_CONTACT_MAX + 1]; /* ... and this contact */
    int64_t wait_estimate_ms;          /* prechat_get of a waiting one: median of the last APP_WAIT_SAMPLES join
                                          waits (joined - created), ms; -1 when there is none or it is not waiting */
} appdb_prechat_t;

/* One step of the pre-chat timeouts (prechat_sweep); a cut-off of 0 skips its kind. */
typedef struct appdb_sweep {
    int64_t idle_before_ms;  /* active ones not updated since then are closed with idle_note */
    int64_t close_before_ms; /* waiting ones created before then, without a left message, closed with wait_note */
    int64_t wait_before_ms;  /* waiting ones created before then are marked wait_offered (once) */
    tess_str_t idle_note;    /* the system message of an idle close */
    tess_str_t wait_note;    /* the system message of a waiting close */
    size_t limit;            /* rows of each kind per step */
} appdb_sweep_t;

#define APP_WAIT_SAMPLES 20 /* recent joins the wait estimate is the median of */

typedef struct appdb_message {
    int64_t id;                          /* message id, increasing */
    int64_t prechat_id;                  /* its pre-chat */
    int64_t sender_id;                   /* user id of the sender */
    char sender_role[TESS_ROLE_MAX + 1]; /* sender's role */
    char body[APP_BODY_MAX + 1];         /* text */
    int64_t created_ms;                  /* creation time */
} appdb_message_t;

typedef struct appdb_result {
    int rc;                    /* 0, TESS_ENOTFOUND, TESS_ECONFLICT (state forbids it), TESS_EUNAVAIL, ... */
    appdb_user_t *user;        /* user_by_name */
    appdb_prechat_t *prechats; /* prechat_* ops: one row, or the list */
    size_t n_prechats;         /* rows in prechats */
    appdb_message_t *messages; /* message_add: one row; messages_list: the list */
    size_t n_messages;         /* rows in messages */
} appdb_result_t;

typedef void (*appdb_cb)(void *arg, const appdb_result_t *res);

typedef struct appdb_ops {
    const char *name;
    int (*user_by_name)(appdb_t *db, tess_str_t name, appdb_cb cb, void *arg);
    /* The user `id` (id, name, role; no hash), or TESS_ENOTFOUND. */
    int (*user_by_id)(appdb_t *db, int64_t id, appdb_cb cb, void *arg);
    /*
     * The users-table row standing for user `external_id` of another app (a NextAuth user id, a JWT's sub that
     * is not one of ours): found, or made (name "ext:<id>", `role` when "agent" else "visitor", a password
     * hash nothing verifies), so that pre-chats and messages can refer to it. Answers the row (id, name, role).
     */
    int (*user_external)(appdb_t *db, tess_str_t external_id, tess_str_t role, int64_t now_ms, appdb_cb cb, void *arg);
    /* A waiting pre-chat; TESS_EDENIED when the visitor has `max_open` open (not closed) already. */
    int (*prechat_create)(appdb_t *db, int64_t visitor_id, tess_str_t topic, int64_t max_open, int64_t now_ms,
                          appdb_cb cb, void *arg);
    int (*prechat_get)(appdb_t *db, int64_t id, appdb_cb cb, void *arg);
    int (*prechat_waiting)(appdb_t *db, size_t limit, appdb_cb cb, void *arg);
    /*
     * waiting -> active with `agent_id`; ECONFLICT when it is not waiting any more; EDENIED when it is waiting
     * but the agent has `max_active` active pre-chats already (the count and the change are one atomic step
     * per agent on both stores, so concurrent joins of one agent never exceed it).
     */
    int (*prechat_join)(appdb_t *db, int64_t id, int64_t agent_id, int64_t max_active, int64_t now_ms, appdb_cb cb,
                        void *arg);
    /* -> closed; ECONFLICT when already closed. */
    int (*prechat_close)(appdb_t *db, int64_t id, int64_t now_ms, appdb_cb cb, void *arg);
    /* Appends a message and moves the pre-chat's counters in one transaction; ECONFLICT when closed. */
    int (*message_add)(appdb_t *db, int64_t prechat_id, int64_t sender_id, tess_str_t role, tess_str_t body,
                       int64_t now_ms, appdb_cb cb, void *arg);
    int (*messages_list)(appdb_t *db, int64_t prechat_id, int64_t after, size_t limit, appdb_cb cb, void *arg);
    /*
     * The timeouts, one bounded step (at most `limit` rows of each kind, see appdb_sweep_t) in one transaction:
     * active pre-chats not updated since `idle_before_ms` are closed with the system message `idle_note`
     * (sender: their agent, role "system"); waiting ones created before `close_before_ms` without a left
     * message are closed with `wait_note` (sender: their visitor); waiting ones created before
     * `wait_before_ms` and not yet marked get marked (once). A cut-off of 0 skips that kind. Answers the
     * changed rows (prechats: id, the new status, agent_id: 0 for one closed from the queue; n_prechats).
     * Safe when several instances sweep at once: a row is changed by one of them.
     */
    int (*prechat_sweep)(appdb_t *db, const appdb_sweep_t *sw, int64_t now_ms, appdb_cb cb, void *arg);
    /*
     * The visitor of a waiting pre-chat leaves a message: the message (sender `visitor_id`, role "visitor") and
     * `contact` are stored and the pre-chat marked left_message, in one atomic step; it stays waiting. rc only:
     * ENOTFOUND, ECONFLICT when it is not waiting or has a left message already, ETOOBIG.
     */
    int (*prechat_leave)(appdb_t *db, int64_t id, int64_t visitor_id, tess_str_t contact, tess_str_t body,
                         int64_t now_ms, appdb_cb cb, void *arg);
    int (*ping)(appdb_t *db, appdb_cb cb, void *arg);
    void (*close)(appdb_t *db);
    /*
     * Tells every instance's listener (appdb_*_listen) about change `name` (1..APP_EVENT_MAX bytes, e.g.
     * "meta:12", "sid:<id>"): a NOTIFY on PostgreSQL, an event row on SQLite. The callback gets rc only.
     */
    int (*publish)(appdb_t *db, tess_str_t name, appdb_cb cb, void *arg);
} appdb_ops_t;

struct appdb {
    const appdb_ops_t *ops; /* backend table */
};

/*
 * SQLite backend on a borrowed handle (one per thread). Creates the schema when absent (versioned with
 * PRAGMA user_version). Returns 0, TESS_EIO (errbuf filled), TESS_ENOMEM.
 */
struct sqlite3;
int appdb_sqlite_open(appdb_t **out, struct sqlite3 *db, char *errbuf, size_t errcap);
/* Opens (creating) a SQLite database file as tessera uses it: tess_sqlite_connect() (tessera/store.h). */
int appdb_sqlite_connect(struct sqlite3 **out, const char *path, char *errbuf, size_t errcap);
/* Synchronous, for the command line: adds a user. Returns 0, TESS_EEXISTS, TESS_EIO. */
int appdb_sqlite_user_add(struct sqlite3 *db, const char *name, const char *role, const char *pwhash, int64_t now_ms,
                          char *errbuf, size_t errcap);

/*
 * Synchronous, for the command line: every user (id, name, role; no hash) by id, in a malloc'd array the
 * caller frees (NULL when none); a new password hash for a user of ours; a user removed (TESS_ECONFLICT while
 * pre-chats or messages refer to it). Return 0, TESS_ENOTFOUND (no such user), TESS_EIO, TESS_ENOMEM.
 */
int appdb_sqlite_user_list(struct sqlite3 *db, appdb_user_t **out, size_t *n, char *errbuf, size_t errcap);
int appdb_sqlite_user_passwd(struct sqlite3 *db, const char *name, const char *pwhash, char *errbuf, size_t errcap);
int appdb_sqlite_user_del(struct sqlite3 *db, const char *name, char *errbuf, size_t errcap);
/* The schema version the database holds (`have`, 0: none yet) and the one this tessera migrates to. 0 or TESS_EIO. */
int appdb_sqlite_schema(struct sqlite3 *db, int *have, int *want);

/*
 * PostgreSQL backend (appdb_pg.c): the same schema and behaviour as SQLite, versioned and migrated on start.
 * appdb_pg_migrate() runs synchronously at start-up (under an advisory lock: several instances may start at
 * once). appdb_pg_open() makes a per-loop handle driven by libpq pipeline mode on `loop`; while its
 * connection is down, operations complete at once with TESS_EUNAVAIL; queries time out after `timeout_ms`.
 */
struct tess_loop;
int appdb_pg_migrate(const char *conninfo, char *errbuf, size_t errcap);
int appdb_pg_open(appdb_t **out, struct tess_loop *loop, const char *conninfo, int64_t timeout_ms, char *errbuf,
                  size_t errcap);
/* Synchronous, for the command line. Returns 0, TESS_EEXISTS, TESS_EUNAVAIL, TESS_EIO. */
int appdb_pg_user_add(const char *conninfo, const char *name, const char *role, const char *pwhash, int64_t now_ms,
                      char *errbuf, size_t errcap);
/* The same three on PostgreSQL (TESS_EUNAVAIL too). */
int appdb_pg_user_list(const char *conninfo, appdb_user_t **out, size_t *n, char *errbuf, size_t errcap);
int appdb_pg_user_passwd(const char *conninfo, const char *name, const char *pwhash, char *errbuf, size_t errcap);
int appdb_pg_user_del(const char *conninfo, const char *name, char *errbuf, size_t errcap);
int appdb_pg_schema(const char *conninfo, int *have, int *want, char *errbuf, size_t errcap);

/*
 * Change events between instances that share a database without Redis. One listener per process, on one
 * loop: on_event(arg, name) for every name published by any instance (this one's too); on_state(arg, 0)
 * when events may have been missed (the LISTEN connection dropped: caches relying on it must stop and
 * flush) and on_state(arg, 1) once they flow again. Both run on the listener's loop.
 *
 *   SQLite      an event table (app_event) in the same file, tailed when PRAGMA data_version moves (checked
 *               every APP_TAIL_MS); rows older than a minute are pruned
 * Both schemas publish "user:<id>" from a trigger when a user's role changes or the user is deleted, whoever
 * writes the table (another app included).
 *   PostgreSQL  LISTEN tessera_events on a connection of its own; publish is pg_notify
 */
#define APP_TAIL_MS 50
typedef struct appdb_listener appdb_listener_t;
struct appdb_listener {
    void (*free)(appdb_listener_t *l); /* the backend's */
};
typedef struct appdb_listen_opts {
    void (*on_event)(void *arg, tess_str_t name); /* a change */
    void (*on_state)(void *arg, int up);          /* events flow (1) or may be missed (0) */
    void *arg;                                    /* their argument */
} appdb_listen_opts_t;
int appdb_sqlite_listen(appdb_listener_t **out, struct tess_loop *loop, const char *path,
                        const appdb_listen_opts_t *opts, char *errbuf, size_t errcap);
int appdb_pg_listen(appdb_listener_t **out, struct tess_loop *loop, const char *conninfo, int64_t timeout_ms,
                    const appdb_listen_opts_t *opts, char *errbuf, size_t errcap);
/* Stops listening; no callback runs afterwards. NULL is a no-op. */
static inline void appdb_listener_free(appdb_listener_t *l)
{
    if (l != NULL)
        l->free(l);
}

#endif
