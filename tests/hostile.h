/*
 * The hostile suite: workers (and forks of the application) that
 * misbehave without dying, and what the pool must still guarantee. The
 * suite is one executable; each file holds one group of scenarios and
 * registers its worker functions before the first pool is made.
 */
#ifndef PPX_TESTS_HOSTILE_H
#define PPX_TESTS_HOSTILE_H

/* A fork of the application that uses or frees its copy of a pool. */
void hostile_app_register(void);
int hostile_app_run(void);

/* The creator of a pool dies while a fork of it lives. */
int hostile_fork_run(void);

/* Process hygiene: signal dispositions, descriptors, grandchildren. */
void hostile_process_register(void);
int hostile_process_run(void);

#endif
