/*
 * Inside libtessera (internal): the report of a refused identity (identity.c). The rule itself is public:
 * tess_session_identity_valid() in tessera/session.h.
 */
#ifndef TESS_IDENTITY_H
#define TESS_IDENTITY_H

/*
 * Writes one line to stderr saying that a session was refused for its identity: `source` names where the
 * session came from ("a stored session", "a token"). Never the values, the session id or the token: only
 * where, and how many. At most one line a second for the whole process; the line counts the refusals since
 * the previous one. Safe from any thread.
 */
void tess__identity_refused(const char *source);

#endif
