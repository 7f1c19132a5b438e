/* rwait.h - acknowledged writes: WAIT for replicas after the writes sent on one connection,
 * one WAIT for all the writes sent while the previous WAIT was in flight.
 *
 * WAIT n timeout blocks the connection until every write it sent before reached n replicas
 * (or the timeout passed) and answers how many did. A WAIT per write would queue each write
 * behind the previous WAIT; here the writes are sent at once, and the writes sent while a
 * WAIT is in flight share the next one, so a write waits at most for the WAIT in flight plus
 * its own. The connection should carry nothing else (a WAIT holds it up), and its command
 * timeout must allow two WAIT timeouts (block_allowance_ms).
 *
 * Ownership: the struct rwait belongs to its creator; the connection is borrowed and must be
 * closed before rwait_free (closing answers the WAITs in flight, which answers every write). */
#ifndef BRIEFD_RWAIT_H
#define BRIEFD_RWAIT_H

struct rds;
struct rwait;

/* replicas: how many replicas acknowledged, or -1 when no WAIT answered (the connection
 * dropped, timed out or closed). Runs once per rwait_after, after the write's own reply. */
typedef void (*rwait_cb)(void *data, long long replicas);

/* Returns 0 or BD_ENOMEM. */
int rwait_new(struct rds *r, int replicas, int timeout_ms, struct rwait **out);
/* Call right after sending a write on the connection. Returns 0 (cb will run, never from
 * inside this call) or BD_ENOMEM / BD_EREDIS_DOWN (it will not). */
int rwait_after(struct rwait *w, rwait_cb cb, void *data);
void rwait_free(struct rwait *w);

#endif
