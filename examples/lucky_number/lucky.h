#ifndef LUCKY_H
#define LUCKY_H
#include "ppx.h"

/* lucky_number(iterations, n, seed, index) -> sum of i*n for i < iterations,
 * or ValueError("Unlucky number!") when n (drawn in 1..10 if 0) is 7. */
int lucky_number(ppx_call *call, void *udata);

#endif
