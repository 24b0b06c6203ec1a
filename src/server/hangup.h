/*
 * Hang-ups of held requests. While a request waits for an asynchronous answer (a long-poll, an event stream,
 * a password check), h2o does not read its connection, so it would learn that the client went away only
 * when it writes the answer. A hang-up watch notices at once: the connection's socket is watched for
 * readability through a dup of its descriptor (tessera/loop.h io_new, so h2o's own reads are untouched),
 * and a readable socket is peeked at: bytes are a pipelined next request (the watch stops; h2o reads them
 * after this answer), end-of-file or an error is a hang-up.
 *
 * Thread-safety: one loop's; the watch must be freed before its request goes (e.g. from the request
 * pool's dispose).
 */
#ifndef TESSERA_SERVER_HANGUP_H
#define TESSERA_SERVER_HANGUP_H

#include "server/server.h"

typedef struct hangup hangup_t;
typedef void (*hangup_cb)(void *arg);

/*
 * Watches the connection of `req` on `th`'s loop: `cb(arg)` runs once, on that loop, when the client hangs
 * up (it may free the watch). NULL when the connection has no socket of its own or out of memory (then no
 * hang-up is noticed before the answer is written, as without a watch).
 */
hangup_t *hangup_watch(server_thread_t *th, h2o_req_t *req, hangup_cb cb, void *arg);
/* Stops watching and frees; NULL is a no-op. */
void hangup_free(hangup_t *h);

#endif
