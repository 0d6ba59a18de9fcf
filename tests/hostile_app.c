/* Forks of the application: a pool belongs to the process that made it. */
#include "hostile.h"
#include "support.h"
#include "ppx.h"

void hostile_app_register(void)
{
}

int hostile_app_run(void)
{
    return 0;
}
