/* Shared by the endpoints (routes.c), the jobs (jobs.c) and /stats
 * (stats.c). Loop thread only. */
#ifndef OFFLOAD_ROUTES_H
#define OFFLOAD_ROUTES_H
#include "json.h"
#include "server.h"

/* Submits fn(args) for c's request, within --max-jobs (else 503 with
 * Retry-After) and --job-timeout-ms (past it 504); the answer is written
 * when the job resolves. args is a msgpack array (ppx_pack), copied. */
void job_submit(conn *c, job_kind kind, const char *fn, const void *args, size_t len);

/* The responses of each kind of job, for the pool and --inline alike. */
void respond_lucky(conn *c, int64_t value);
void respond_work(conn *c, uint64_t value);
void respond_hash(conn *c, const unsigned char *hash, size_t len);
/* A task's failure: its type, message, function and pid. */
void respond_task_error(conn *c, int status, const ppx_error *e);
/* Sends b as the body and frees it. */
void respond_buf(conn *c, int status, jbuf *b);

/* GET /stats. */
void stats_respond(conn *c);

#endif
