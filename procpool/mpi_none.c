/*
 * Built without MPI: backend.c never chooses the MPI backend, so these
 * only keep the linker whole and say so if reached.
 */
#include "remote.h"

int ppx__remote_start(ppx_pool *p)
{
    (void)p;
    ppx__set_last_error("ppx was built without MPI");
    return PPX_EBACKEND;
}

void ppx__remote_wake(ppx_pool *p)
{
    (void)p;
}

void ppx__remote_stop(ppx_pool *p)
{
    (void)p;
}

int ppx__node_serve(const ppx_pool_options *o)
{
    (void)o;
    ppx__set_last_error("ppx was built without MPI");
    return PPX_EBACKEND;
}
