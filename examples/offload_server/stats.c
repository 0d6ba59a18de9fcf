/* GET /stats: the server's counters and the pool's. */
#include "routes.h"

#include <inttypes.h>

static void server_stats(jbuf *b, const server *s)
{
    const server_counters *k = &s->count;
    jbuf_printf(b,
                "{\"mode\":\"%s\",\"server\":{\"requests\":%" PRIu64 ",\"in_flight\":%" PRIu64
                ",\"connections\":%" PRIu64 ",\"jobs_started\":%" PRIu64
                ",\"jobs_failed\":%" PRIu64 ",\"jobs_cancelled\":%" PRIu64
                ",\"jobs_timed_out\":%" PRIu64 ",\"jobs_refused\":%" PRIu64
                ",\"client_disconnects\":%" PRIu64 ",\"connections_refused\":%" PRIu64
                ",\"timeouts\":%" PRIu64 "},",
                s->inline_mode ? "inline" : "ppx", k->requests, k->in_flight, k->connections,
                k->jobs_started, k->jobs_failed, k->jobs_cancelled, k->jobs_timed_out,
                k->jobs_refused, k->client_disconnects, k->connections_refused, k->timeouts);
}

void stats_respond(conn *c)
{
    server *s = c->srv;
    jbuf b = {0};
    server_stats(&b, s);
    if (!s->pool) {
        /* --inline never creates a pool. */
        jbuf_printf(&b, "\"pool\":null}\n");
        respond_buf(c, 200, &b);
        return;
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT; /* zeros if the pool cannot be read */
    (void)ppx_pool_stats_get(s->pool, &st);
    int workers = ppx_pool_workers(s->pool);
    jbuf_printf(&b, "\"pool\":{\"workers\":%d,\"worker_pids\":[", workers);
    for (int i = 0; i < workers; i++)
        jbuf_printf(&b, "%s%ld", i ? "," : "", ppx_pool_worker_pid(s->pool, i));
    jbuf_printf(&b,
                "],\"submitted\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64
                ",\"cancelled\":%" PRIu64 ",\"crashed\":%" PRIu64 ",\"respawns\":%" PRIu64
                ",\"killed\":%" PRIu64 ",\"stolen\":%" PRIu64 ",\"timed_out\":%" PRIu64
                ",\"recycled\":%" PRIu64 ",\"init_failures\":%" PRIu64
                ",\"crash_streak\":%" PRIu64 ",\"queued\":%" PRIu64 ",\"running\":%" PRIu64
                ",\"arena_used\":%" PRIu64 ",\"arena_calls\":%" PRIu64 "}}\n",
                st.submitted, st.completed, st.failed, st.cancelled, st.crashed, st.respawns,
                st.killed, st.stolen, st.timed_out, st.recycled, st.init_failures,
                st.crash_streak, st.queued, st.running, st.arena_used, st.arena_calls);
    respond_buf(c, 200, &b);
}
