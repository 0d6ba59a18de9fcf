/*
 * Losing a whole rank, run by meson under `mpirun -np 3 --enable-recovery`
 * with PPX_NODE_TIMEOUT_MS=1000 (without --enable-recovery Open MPI ends
 * the whole job when a rank dies). A call kills its own node's process;
 * rank 0 must fail that call with NodeLost naming the node, not hang, and
 * go on serving new calls from the node that is left.
 */
#include "support.h"
#include "ppx.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static ppx_pool *pool;

static long parent_of(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *end = strrchr(buf, ')');
    long ppid = -1;
    if (!end || sscanf(end + 2, "%*c %ld", &ppid) != 1)
        return -1;
    return ppid;
}

/* A worker's parent is its node's fork server, whose parent is the node. */
static int kill_my_node(ppx_call *c, void *u)
{
    (void)u;
    long node = parent_of((long)getppid());
    if (node > 1)
        kill((pid_t)node, SIGKILL);
    sleep(30);
    return ppx_return_nil(c);
}

static int rank_of_node(ppx_call *c, void *u)
{
    (void)u;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    return ppx_return_int(c, r ? atoi(r) : -1);
}

static void lost_node_fails_its_calls_and_the_rest_go_on(void **state)
{
    (void)state;
    ppx_future *doomed;
    assert_int_equal(ppx_pool_submitf(pool, &doomed, "kill_my_node", ""), 0);
    assert_int_equal(ppx_future_wait(doomed, 30000), 0);
    assert_int_equal(ppx_future_state(doomed), PPX_FAILED);
    const ppx_error *e = ppx_future_error(doomed);
    assert_string_equal(e->type, "NodeLost");
    assert_non_null(strstr(e->message, "sent nothing for"));
    assert_true(strstr(e->node, " rank 1") || strstr(e->node, " rank 2"));
    int lost = strstr(e->node, " rank 1") ? 1 : 2;
    ppx_future_unref(doomed);

    for (int i = 0; i < 6; i++) {
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(pool, &f, "rank_of_node", ""), 0);
        assert_int_equal(ppx_future_wait(f, 30000), 0);
        int64_t r;
        assert_int_equal(ppx_future_int(f, &r), 0);
        assert_int_equal(r, 3 - lost); /* only the node that is left */
        ppx_future_unref(f);
    }
    assert_int_equal(ppx_pool_workers(pool), 1);
}

int main(void)
{
    ppx_register("kill_my_node", kill_my_node, NULL);
    ppx_register("rank_of_node", rank_of_node, NULL);
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &pool);
    if (rc) {
        fprintf(stderr, "test_mpi_lost: %s: %s\n", ppx_strerror(rc), ppx_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lost_node_fails_its_calls_and_the_rest_go_on),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ppx_pool_free(pool);
    return failed ? 1 : 0;
}
