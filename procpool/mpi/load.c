/*
 * entry.h in the shared library: the MPI backend is a module next to
 * libppx.so, loaded the first time a pool is made under mpirun and kept
 * for the life of the process (MPI cannot be unloaded once initialised).
 */
#include "entry.h"
#include "procpool/errors.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define S2(x) #x
#define S(x) S2(x)
#define VERSION S(PPX_VERSION_MAJOR) "." S(PPX_VERSION_MINOR) "." S(PPX_VERSION_PATCH)
#define MODULE_NAME "libppx-mpi-" VERSION ".so"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const ppx__mpi_entry *loaded; /* under load_lock */
/* An address inside libppx.so, for dladdr to name the file. */
static const char anchor;

/* The module's path: the directory libppx.so was loaded from, so the
 * module of the same build and install is the one found. */
static int module_path(char *buf, size_t len)
{
    Dl_info di;
    if (!dladdr(&anchor, &di) || !di.dli_fname)
        return -1;
    const char *slash = strrchr(di.dli_fname, '/');
    int n = slash ? snprintf(buf, len, "%.*s/%s", (int)(slash - di.dli_fname), di.dli_fname,
                             MODULE_NAME)
                  : snprintf(buf, len, "./%s", MODULE_NAME);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Opens the module and checks that it is from this build. RTLD_GLOBAL:
 * Open MPI's own components, which MPI_Init loads, find libmpi's and
 * libopen-pal's symbols in the global scope, not through links of their
 * own. */
static const ppx__mpi_entry *load(void)
{
    char path[4096];
    if (module_path(path, sizeof path) != 0) {
        ppx__set_last_error("the MPI backend (%s) was not looked for: the directory "
                            "libppx.so was loaded from is unknown",
                            MODULE_NAME);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        ppx__set_last_error("the MPI backend did not load: %.400s", dlerror());
        return NULL;
    }
    const ppx__mpi_entry *e = dlsym(h, PPX__MPI_ENTRY_SYMBOL);
    if (!e || strcmp(e->version, VERSION) != 0 || e->pool_size != sizeof(ppx_pool) ||
        e->ops_size != sizeof(ppx__backend_ops)) {
        ppx__set_last_error("%.300s is not the MPI backend of this libppx (%s): reinstall "
                            "both from one build",
                            path, VERSION);
        dlclose(h);
        return NULL;
    }
    return e;
}

const ppx__mpi_entry *ppx__mpi_entry_get(void)
{
    pthread_mutex_lock(&load_lock);
    if (!loaded)
        loaded = load();
    const ppx__mpi_entry *e = loaded;
    pthread_mutex_unlock(&load_lock);
    return e;
}
