/* Process hygiene: what workers inherit and what they leave behind. */
#include "hostile.h"
#include "support.h"
#include "ppx.h"

void hostile_process_register(void)
{
}

int hostile_process_run(void)
{
    return 0;
}
