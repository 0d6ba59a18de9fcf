/*
 * Frames over ring records. A frame that fits one record travels whole;
 * a bigger one (up to the pool's max_payload) travels as a FIRST record
 * carrying the total length, MORE records and a LAST record, which the
 * reader reassembles. The writer puts as much as fits and resumes later,
 * so neither side has to hold the whole frame in the ring at once.
 */
#ifndef PPX_PROCPOOL_FRAME_H
#define PPX_PROCPOOL_FRAME_H
#include "../shm/ring.h"

#include <stdbool.h>
#include <stddef.h>

enum { PPX__REC_WHOLE = 0, PPX__REC_FIRST = 1, PPX__REC_MORE = 2, PPX__REC_LAST = 3 };

/* Writes frame[*off..len) into p's ring as far as it fits, advancing *off.
 * Returns true once the whole frame is in; false when the ring filled
 * first: call again after space was released. */
bool ppx__frame_put(ppx__port *p, const void *frame, size_t len, size_t *off);
/* Bytes the next record of this frame needs (to wait for that much space). */
size_t ppx__frame_next_need(const ppx__port *p, size_t len, size_t off);

typedef struct ppx__rx {
    unsigned char *buf;
    size_t len, total;
    size_t max; /* largest frame accepted */
} ppx__rx;

/* Feeds one record. Returns 1 and the frame when one is complete (it
 * points into the record or into rx; valid until the record is released
 * and ppx__rx_reset is called), 0 when more records are needed, or
 * PPX_EMALFORMED / PPX_ETOOBIG / PPX_ENOMEM. */
int ppx__rx_feed(ppx__rx *rx, const void *rec, size_t len, uint32_t flags,
                 const void **frame, size_t *flen);
void ppx__rx_reset(ppx__rx *rx);

#endif
