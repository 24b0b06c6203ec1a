/*
 * Live-chat signals and the transcript (livechat.c): typing, read receipts, GET .../transcript.
 *
 * Typing and "read up to message N" are events on the pre-chat's stream only (GET /api/prechats/{id}/events,
 * `event: typing` / `event: read`); nothing is stored per keystroke. They travel on the change bus as names
 *   live:<prechat>:<kind>:<side>:<value>:<origin>.<seq>
 * where <kind> is "typing" or "read", <side> "visitor" or "agent", <value> the read receipt's N (0 for
 * typing), and <origin>.<seq> this process's random id and a per-process sequence. A process handles its own
 * events once, when it publishes them, and drops them when the SQLite event table or NOTIFY bring them back;
 * a stream forwards a side's read receipt only when its N is larger than the last one it sent. Both rules are
 * by value, never by timing.
 */
#ifndef TESSERA_SERVER_LIVECHAT_H
#define TESSERA_SERVER_LIVECHAT_H

#include "server/request.h"

#define LIVE_SIDES 2 /* visitor, agent */

/* A live event, parsed from the bus name (without its "live:<prechat>:" head and origin). */
typedef struct live_event {
    int read;      /* 1: a read receipt, 0: typing */
    int side;      /* 0 visitor, 1 agent */
    int64_t value; /* read: up to this message id */
} live_event_t;

/* Sets this process's origin id (once, before the loops start). 0 or TESS_EIO. */
int livechat_init(void);
/*
 * Parses a "live:..." bus name. Returns 1 with `*id` and `*ev` (and `*own` = 1 when this process published
 * it), 0 when `name` is not a well-formed live event.
 */
int livechat_parse(tess_str_t name, int64_t *id, live_event_t *ev, int *own);
/* This process's origin id (16 hex digits). */
const char *livechat_origin(void);
/* The event's name of a side ("visitor", "agent"). */
const char *livechat_side_name(int side);

/* Route handlers. */
void h_prechat_typing(tess_req_t *r);
void h_prechat_read(tess_req_t *r);
void h_prechat_transcript(tess_req_t *r);

#endif
