/*
 * entry.h in the shared library: the MPI backend is a module next to
 * libppx.so, loaded the first time a pool is made under mpirun and kept
 * for the life of the process (MPI cannot be unloaded once initialised).
 */
#include "entry.h"
#include "procpool/errors.h"
#include "ppx_abi_token.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODULE_NAME "libppx-mpi-" PPX__VERSION_STRING ".so"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const ppx__mpi_entry *loaded; /* under load_lock */
/* An address inside libppx.so, for the loader to name the file. */
static const char anchor;

/* The module's path in dir (up to len bytes of it): false if too long. */
static bool in_dir(char *out, size_t cap, const char *dir, size_t len)
{
    int n = snprintf(out, cap, "%.*s/%s", (int)len, dir, MODULE_NAME);
    return n > 0 && (size_t)n < cap;
}

/* Where the module of this build is: beside the file libppx.so really is
 * (a symlink to it, as in a packaging view, resolved), else beside the
 * name it was loaded by. The loader's origin is absolute, taken at load:
 * a relative LD_LIBRARY_PATH and a chdir since do not mislead it. */
static bool module_path(char *out, size_t cap)
{
    Dl_info di;
    struct link_map *lm = NULL;
    char origin[PATH_MAX], real[PATH_MAX], file[PATH_MAX + 256];
    if (!dladdr1(&anchor, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm ||
        dlinfo(lm, RTLD_DI_ORIGIN, origin) != 0)
        return false;
    const char *name = strrchr(lm->l_name, '/');
    name = name ? name + 1 : lm->l_name;
    int n = snprintf(file, sizeof file, "%s/%s", origin, name);
    if (n > 0 && (size_t)n < sizeof file && realpath(file, real)) {
        const char *slash = strrchr(real, '/');
        if (slash && in_dir(out, cap, real, (size_t)(slash - real)) && access(out, F_OK) == 0)
            return true;
    }
    return in_dir(out, cap, origin, strlen(origin));
}

/* Opens the module and checks that it is from this build. RTLD_GLOBAL:
 * Open MPI's own components, which MPI_Init loads, find libmpi's and
 * libopen-pal's symbols in the global scope, not through links of their
 * own. */
static const ppx__mpi_entry *load(void)
{
    char path[PATH_MAX + 64];
    if (!module_path(path, sizeof path)) {
        ppx__set_last_error("the MPI backend (%s) was not looked for: the loader does not "
                            "say where libppx.so is, or the path is too long",
                            MODULE_NAME);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        ppx__set_last_error("the MPI backend did not load: %.400s", dlerror());
        return NULL;
    }
    const ppx__mpi_entry *e = dlsym(h, PPX__MPI_ENTRY_SYMBOL);
    if (!e || !e->version || strcmp(e->version, PPX__VERSION_STRING) != 0 || !e->token ||
        strcmp(e->token, PPX__ABI_TOKEN) != 0) {
        ppx__set_last_error("%.300s is not the MPI backend of this libppx (%s, build %.8s): "
                            "reinstall both from one build",
                            path, PPX__VERSION_STRING, PPX__ABI_TOKEN);
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
