/*
 * The CPU time of an MPI job's processes, from /proc: bench_mpi's
 * rtt_cpu_us_per_call and idle_cpu_ms.
 */
#include "job_cpu.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct proc {
    long pid, ppid;
    int launcher; /* 2: mpirun, 1: an Open MPI daemon (orted), 0: neither */
} proc;

static double run_secs(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    struct dirent *e;
    double secs = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p2[320];
        snprintf(p2, sizeof p2, "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1)
            secs += (double)ns / 1e9;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return secs;
}

static int read_stat(long pid, proc *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'), *comm = strchr(buf, '(');
    long ppid;
    if (!p || !comm || sscanf(p + 2, "%*c %ld", &ppid) != 1)
        return -1;
    *p = '\0';
    comm++;
    int launcher = !strcmp(comm, "mpirun") || !strcmp(comm, "orterun") ? 2
                   : !strcmp(comm, "orted")                           ? 1
                                                                      : 0;
    *out = (proc){pid, ppid, launcher};
    return 0;
}

static bool under(const proc *ps, size_t n, long pid, long root)
{
    for (int depth = 0; depth < 16 && pid > 1; depth++) {
        if (pid == root)
            return true;
        long parent = 0;
        for (size_t i = 0; i < n; i++)
            if (ps[i].pid == pid)
                parent = ps[i].ppid;
        pid = parent;
    }
    return false;
}

/* The job's processes, found once the pools are up (none are replaced
 * while the benchmark runs): reading only these keeps the reading cheap. */
static long tree_pid[256];
static int tree_of[256]; /* 0: rank 0's tree, 1: the nodes', 2: mpirun */
static int ntree;

void find_job(void)
{
    static proc ps[4096];
    size_t n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < sizeof ps / sizeof ps[0]) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end == '\0' && pid > 0 && read_stat(pid, &ps[n]) == 0)
            n++;
    }
    if (d)
        closedir(d);
    /* mpirun is our parent, or (over emulated hosts) an ancestor: the
     * parent of the rsh agent that started our daemon, orted. Daemons
     * count as mpirun's, not as a node's. */
    long self = getpid(), mpirun = getppid();
    for (long pid = mpirun, depth = 0; pid > 1 && depth < 16; depth++) {
        size_t i = 0;
        while (i < n && ps[i].pid != pid)
            i++;
        if (i == n)
            break;
        if (ps[i].launcher == 2)
            mpirun = pid;
        pid = ps[i].ppid;
    }
    for (size_t i = 0; i < n && ntree < 256; i++) {
        bool ours = under(ps, n, ps[i].pid, mpirun);
        int which = ps[i].pid == mpirun || (ours && ps[i].launcher) ? 2
                    : under(ps, n, ps[i].pid, self)     ? 0
                    : ours                              ? 1
                                                        : -1;
        if (which >= 0) {
            tree_pid[ntree] = ps[i].pid;
            tree_of[ntree++] = which;
        }
    }
}

cpu job_cpu(void)
{
    cpu c = {0};
    for (int i = 0; i < ntree; i++) {
        double s = run_secs(tree_pid[i]);
        *(tree_of[i] == 0 ? &c.rank0 : tree_of[i] == 1 ? &c.nodes : &c.mpirun) += s;
    }
    return c;
}

