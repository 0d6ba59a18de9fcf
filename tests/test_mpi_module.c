/*
 * The MPI backend as the shared library's module (procpool/mpi/entry.h),
 * in a program linked with libppx.so as a user's is:
 *   - a program making local pools never maps libmpi or the module;
 *   - a module that is missing, or is not ppx's, is a clear PPX_EBACKEND
 *     naming the file, and the process goes on;
 *   - under mpirun (the mpi suite runs this program with three ranks),
 *     the module loads and rank 0's calls run on the other ranks.
 * The other suites link the static library, which has the backend in.
 */
#include "support.h"
#include "test_mpi_support.h"
#include "ppx.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define MODULE "libppx-mpi-" PPX_PROJECT_VERSION ".so"

static int my_rank(ppx_call *call, void *udata)
{
    (void)udata;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    return ppx_return_int(call, r ? atoi(r) : -1);
}

/* Whether a mapping of this process's names a file containing name. */
static bool mapped(const char *name)
{
    static char maps[1 << 16];
    long n = support_read_file("/proc/self/maps", maps, sizeof maps);
    assert_true(n > 0);
    return strstr(maps, name) != NULL;
}

/* The file a symbol of this process comes from. */
static const char *file_of(const void *sym)
{
    Dl_info di;
    assert_true(dladdr(sym, &di) && di.dli_fname);
    return di.dli_fname;
}

static void test_local_pool_maps_no_mpi(void **state)
{
    (void)state;
    assert_non_null(strstr(file_of((const void *)ppx_version), "libppx.so"));
    assert_false(mapped("libmpi"));
    ppx_pool *p;
    assert_int_equal(ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1, .backend = PPX_BACKEND_AUTO), &p),
                     0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "my_rank", ""), 0);
    assert_int_equal(support_future_int(f), -1);
    ppx_future_unref(f);
    ppx_pool_free(p);
    assert_false(mapped("libmpi"));
    assert_false(mapped("libopen-pal"));
    assert_false(mapped(MODULE));
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    assert_true(in >= 0);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(out >= 0);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    close(out);
}

/* Runs this program's "probe" (main) in a directory holding a copy of
 * libppx.so and, when fake is not NULL, a copy of that file under the
 * module's name; its line of output goes to out. */
static void probe_in_copy(const char *fake, char *out, size_t cap)
{
    char dir[] = "/tmp/ppx-module-XXXXXX", lib[128], mod[128];
    assert_non_null(mkdtemp(dir));
    snprintf(lib, sizeof lib, "%s/libppx.so.%d.%d", dir, PPX_VERSION_MAJOR, PPX_VERSION_MINOR);
    snprintf(mod, sizeof mod, "%s/%s", dir, MODULE);
    copy_file(file_of((const void *)ppx_version), lib);
    if (fake)
        copy_file(fake, mod);
    /* Its path, not /proc/self/exe itself: under valgrind that names
     * valgrind, where readlink gives the program's. */
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(len > 0);
    exe[len] = '\0';
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* LD_LIBRARY_PATH comes before the program's RUNPATH; the ranks'
         * variables are what mpirun would have set for rank 0 of 3. */
        dup2(fds[1], 1);
        setenv("LD_LIBRARY_PATH", dir, 1);
        setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
        setenv("OMPI_COMM_WORLD_RANK", "0", 1);
        execl(exe, exe, "probe", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < cap && (n = read(fds[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unlink(lib);
    unlink(mod);
    assert_int_equal(rmdir(dir), 0);
    /* The probe ran on the copy, not on the build's libppx.so. */
    assert_non_null(strstr(out, dir));
}

static void test_missing_module_is_a_clear_error(void **state)
{
    (void)state;
    char line[1024];
    probe_in_copy(NULL, line, sizeof line);
    assert_non_null(strstr(line, "rc=PPX_EBACKEND "));
    assert_non_null(strstr(line, "the MPI backend did not load: "));
    assert_non_null(strstr(line, "/" MODULE ": cannot open shared object file"));
    /* The same process then made a local pool and ran a call. */
    assert_non_null(strstr(line, " local=7"));
}

static void test_foreign_module_is_refused(void **state)
{
    (void)state;
    char line[1024];
    /* A real shared object, but not ppx's module: libuv's own file. */
    probe_in_copy(file_of((const void *)uv_version), line, sizeof line);
    assert_non_null(strstr(line, "rc=PPX_EBACKEND "));
    assert_non_null(strstr(line, "/" MODULE " is not the MPI backend of this libppx (" PPX_PROJECT_VERSION
                                 "): reinstall both from one build"));
    assert_non_null(strstr(line, " local=7"));
}

static int seven(ppx_call *call, void *udata)
{
    (void)udata;
    return ppx_return_int(call, 7);
}

/* The probe: as rank 0 under mpirun, with the module as probe_in_copy
 * left it. Prints "lib=<libppx.so's path> rc=<code> <message>
 * local=<a local pool's answer>". */
static int probe(void)
{
    ppx_register("seven", seven, NULL);
    ppx_pool *p = NULL;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &p);
    printf("lib=%s rc=%s %s", file_of((const void *)ppx_version), ppx_err_name(rc),
           ppx_last_error());
    if (p)
        ppx_pool_free(p);
    ppx_pool *local;
    ppx_future *f;
    int64_t v = -1;
    if (ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1, .backend = PPX_BACKEND_LOCAL), &local) == 0) {
        if (ppx_pool_submitf(local, &f, "seven", "") == 0) {
            if (ppx_future_wait(f, 30000) != 0 || ppx_future_int(f, &v) != 0)
                v = -1;
            ppx_future_unref(f);
        }
        ppx_pool_free(local);
    }
    printf(" local=%lld\n", (long long)v);
    return 0;
}

/* Under mpirun: rank 0's pool is the MPI backend's, through the module;
 * the other ranks serve it from inside ppx_pool_new and exit. */
static int under_mpirun(void)
{
    ppx_pool *p;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &p);
    if (rc) {
        fprintf(stderr, "test_mpi_module: %s: %s\n", ppx_strerror(rc), ppx_last_error());
        support_mpi_status(1);
        return 1;
    }
    int failed = !mapped(MODULE) || !mapped("libmpi");
    for (int i = 0; i < 8 && !failed; i++) {
        ppx_future *f;
        int64_t rank = -1;
        if (ppx_pool_submitf(p, &f, "my_rank", "") == 0) {
            if (ppx_future_wait(f, 30000) != 0 || ppx_future_int(f, &rank) != 0)
                rank = -1;
            ppx_future_unref(f);
        }
        printf("call %d ran on rank %lld\n", i, (long long)rank);
        failed = rank != 1 && rank != 2;
    }
    ppx_pool_free(p);
    support_mpi_status(failed);
    return failed;
}

int main(int argc, char **argv)
{
    ppx_register("my_rank", my_rank, NULL);
    if (argc > 1 && strcmp(argv[1], "probe") == 0)
        return probe();
    if (getenv("OMPI_COMM_WORLD_SIZE"))
        return under_mpirun();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_pool_maps_no_mpi),
        cmocka_unit_test(test_missing_module_is_a_clear_error),
        cmocka_unit_test(test_foreign_module_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
