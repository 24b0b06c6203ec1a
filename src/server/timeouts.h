/*
 * The pre-chat timeouts (timeouts.c): a sweep on loop 0, once a second, bounded per tick.
 *
 *   - TESSERA_PRECHAT_IDLE_TIMEOUT: an active pre-chat with no message (no change) for that long is closed with
 *     a system message "closed after N minutes without a message"; both sides' streams get it, then the
 *     closed meta, then end (push.c), as after POST .../close.
 *   - TESSERA_PRECHAT_WAIT_TIMEOUT: a waiting pre-chat not joined within it gets "offerLeaveMessage": true in
 *     its meta (poll.c renders it from created_at); the sweep marks it once in the store and pushes the meta.
 *   - TESSERA_PRECHAT_WAIT_CLOSE (greater than the wait timeout): a pre-chat still waiting that long after its
 *     creation is closed like an idle one, with "closed after N minutes without an agent" (its visitor the
 *     sender), and the queue behind it moves up; one whose visitor left a message stays waiting.
 *
 * The store's sweep step is atomic and changes a row once, so several instances may sweep one database.
 */
#ifndef TESSERA_SERVER_TIMEOUTS_H
#define TESSERA_SERVER_TIMEOUTS_H

#include "server/server.h"

#define SWEEP_INTERVAL_MS 1000 /* a tick */
#define SWEEP_BATCH 100        /* rows of each kind changed per tick at most */

/* Starts the sweep on `th` (loop 0; nothing when all three timeouts are 0). Called on th's thread or before it runs. */
void timeouts_start(server_thread_t *th);
/* Stops it (th's thread): no tick after this; a step in flight completes without effect. */
void timeouts_stop(server_thread_t *th);

#endif
