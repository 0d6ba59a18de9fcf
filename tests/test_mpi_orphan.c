/*
 * Rank 0 dies (SIGKILL) while its nodes run its calls, under
 * `mpirun -np 3 --enable-recovery`, where Open MPI keeps the job: the
 * nodes must notice (rank 0 is on their host) and end, workers and all,
 * so mpirun returns and nothing of the job is left, which
 * test_mpi_job.sh checks after mpirun returns. Rank 0 writes its status
 * (0: it got as far as its death) first.
 */
#include "support.h"
#include "test_mpi_support.h"
#include "ppx.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

/* Marks "run.<pid>" and sleeps far longer than the test may take. */
static int linger(ppx_call *c, void *u)
{
    (void)u;
    char path[128];
    snprintf(path, sizeof path, "%s/run.%ld", dir, (long)getpid());
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    sleep(600);
    return ppx_return_nil(c);
}

static int count_runs(void)
{
    char cmd[160], out[16] = "";
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^run\\.'", dir);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    if (!fgets(out, sizeof out, p))
        out[0] = 0;
    pclose(p);
    return atoi(out);
}

int main(void)
{
    ppx_register("linger", linger, NULL);
    const char *job = getenv("OMPI_MCA_ess_base_jobid");
    snprintf(dir, sizeof dir, "/tmp/ppx-mpi-orphan-%s", job ? job : "x");
    mkdir(dir, 0700);
    ppx_pool *pool;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &pool);
    if (rc) {
        fprintf(stderr, "test_mpi_orphan: %s: %s\n", ppx_strerror(rc), ppx_last_error());
        support_mpi_status(1);
        return 1;
    }
    ppx_future *f[4];
    for (int i = 0; i < 4; i++)
        if (ppx_pool_submitf(pool, &f[i], "linger", "") != 0)
            return 1;
    /* Both nodes run one (one worker each) before rank 0 goes. */
    int64_t until = support_now_ms() + 20000;
    while (count_runs() < 2 && support_now_ms() < until)
        support_sleep_ms(5);
    int runs = count_runs();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    printf("calls running on the nodes: %d\n", runs);
    support_mpi_status(runs == 2 ? 0 : 1);
    fflush(stdout);
    kill(getpid(), SIGKILL);
    return 1;
}
