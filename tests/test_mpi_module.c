/*
 * The MPI backend as the shared library's module (procpool/mpi/entry.h),
 * in a program linked with libppx.so as a user's is:
 *   - a program making local pools never maps libmpi or the module;
 *   - a module that is missing, not ppx's, or from another release or
 *     build of ppx is a clear PPX_EBACKEND naming the file, and the
 *     process goes on to make local pools;
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

/* Whether a mapping of this process's names a file containing name: the
 * whole of /proc/self/maps is read (rank 0's is ~50 KB under mpirun). */
static bool mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return false;
    char line[4096 + 256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

/* The file an address of this process is in. */
static const char *file_of(const void *addr)
{
    Dl_info di;
    assert_true(dladdr(addr, &di) && di.dli_fname);
    return di.dli_fname;
}

/* libppx.so's path, from a string inside it (ppx_version's address could
 * be the program's own PLT slot where the program is not PIE). */
static const char *libppx_path(void)
{
    return file_of(ppx_version());
}

static void test_local_pool_maps_no_mpi(void **state)
{
    (void)state;
    assert_non_null(strstr(libppx_path(), "libppx.so"));
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

/* A directory holding a copy of libppx.so and maybe a module: made by
 * setup, emptied and removed by teardown whatever the test did. */
typedef struct {
    char dir[256];
    char lib[512];
    char mod[512];
} copy_dir;

static int copy_setup(void **state)
{
    static copy_dir c;
    const char *tmp = getenv("TMPDIR");
    snprintf(c.dir, sizeof c.dir, "%s/ppx-module-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c.dir))
        return -1;
    /* Under the name the loader knows it by (its soname). */
    const char *base = strrchr(libppx_path(), '/');
    snprintf(c.lib, sizeof c.lib, "%s/%s", c.dir, base ? base + 1 : libppx_path());
    snprintf(c.mod, sizeof c.mod, "%s/%s", c.dir, MODULE);
    *state = &c;
    return 0;
}

static int copy_teardown(void **state)
{
    copy_dir *c = *state;
    unlink(c->lib);
    unlink(c->mod);
    return rmdir(c->dir);
}

/* Runs this program's "probe" (main) on c's copy of libppx.so, with the
 * file fake (when not NULL) as the module beside it; its output goes to
 * out. */
static void probe_in_copy(copy_dir *c, const char *fake, char *out, size_t cap)
{
    copy_file(libppx_path(), c->lib);
    if (fake)
        copy_file(fake, c->mod);
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
        setenv("LD_LIBRARY_PATH", c->dir, 1);
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
    /* The probe ran on the copy, not on the build's libppx.so. */
    char want[600];
    snprintf(want, sizeof want, "lib=%s ", c->lib);
    assert_non_null(strstr(out, want));
}

static void test_missing_module_is_a_clear_error(void **state)
{
    copy_dir *c = *state;
    char line[2048], want[700];
    probe_in_copy(c, NULL, line, sizeof line);
    snprintf(want, sizeof want,
             "rc=PPX_EBACKEND the MPI backend did not load: %s: cannot open shared object file",
             c->mod);
    assert_non_null(strstr(line, want));
    /* The same process then made a local pool and ran a call. */
    assert_non_null(strstr(line, " local=7\n"));
}

/* The module's file holds something else, or another build's module:
 * refused, named, and nothing of it runs. */
static void refused(copy_dir *c, const char *fake)
{
    char line[2048], want[700];
    probe_in_copy(c, fake, line, sizeof line);
    snprintf(want, sizeof want,
             "rc=PPX_EBACKEND %s is not the MPI backend of this libppx (" PPX_PROJECT_VERSION
             ", build ",
             c->mod);
    assert_non_null(strstr(line, want));
    assert_non_null(strstr(line, "): reinstall both from one build local=7\n"));
}

static void test_foreign_module_is_refused(void **state)
{
    /* A real shared object, but not ppx's module: libuv's own file. */
    refused(*state, file_of((const void *)uv_version));
}

static void test_other_release_is_refused(void **state)
{
    const char *fake = getenv("FAKE_MODULE_VERSION"); /* says 9.9.9 */
    assert_non_null(fake);
    refused(*state, fake);
}

static void test_other_build_is_refused(void **state)
{
    const char *fake = getenv("FAKE_MODULE_TOKEN"); /* this release, another token */
    assert_non_null(fake);
    refused(*state, fake);
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
    printf("lib=%s rc=%s %s", libppx_path(), ppx_err_name(rc),
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
        cmocka_unit_test_setup_teardown(test_missing_module_is_a_clear_error, copy_setup,
                                        copy_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_module_is_refused, copy_setup, copy_teardown),
        cmocka_unit_test_setup_teardown(test_other_release_is_refused, copy_setup, copy_teardown),
        cmocka_unit_test_setup_teardown(test_other_build_is_refused, copy_setup, copy_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
