/* test_hostile.c's worker functions (hostile_fns.c). */
#ifndef PPX_TESTS_HOSTILE_FNS_H
#define PPX_TESTS_HOSTILE_FNS_H

/* What scribble(mode, part, seed) writes. */
enum { MODE_RANDOM, MODE_ONES, MODE_ZEROS, MODES };
/* What a scribble hits: parts of the worker's own region (writable), or
 * parts it must not be able to write at all (from PART_HEADER on). */
enum {
    PART_BLOCK,
    PART_REQ,
    PART_RESP,
    PART_OUTBOX,
    PART_OWN,
    PART_HEADER,
    PART_OTHER,
    PART_ARENA,
    PARTS
};

/* Registers add, pid, ppid, scribble, exit_with, close_all,
 * fork_and_return and big_after_flag (see hostile_fns.c). */
void hostile_fns_register(void);

#endif
