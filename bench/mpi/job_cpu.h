/*
 * bench_mpi's reading of the job's CPU time from /proc (see job_cpu.c).
 */
#ifndef PPX_BENCH_MPI_JOB_CPU_H
#define PPX_BENCH_MPI_JOB_CPU_H

/* CPU seconds (time on a CPU, from /proc/PID/task/TID/schedstat, in ns)
 * of every process under mpirun (our parent), split in rank 0's tree
 * (this process, its threads, the local pool's zygote and workers) and
 * everything else (the nodes, their zygotes and workers); mpirun's own
 * apart. */
typedef struct cpu {
    double rank0, nodes, mpirun;
} cpu;

/* Finds the job's processes, once the pools are up. */
void find_job(void);
/* Their CPU time now. */
cpu job_cpu(void);

#endif
