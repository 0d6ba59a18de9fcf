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
    unsigned char *buf; /* a ppx__bigbuf; kept between frames for reuse */
    size_t cap;
    size_t len, total;
    bool active;        /* a chunked frame is being reassembled */
    size_t max;         /* largest frame accepted */
} ppx__rx;

/* Buffers for big payloads: mapped with MAP_POPULATE above a few pages,
 * which faults the whole range in one pass (a fresh 64 MiB faulted page
 * by page costs ~37 ms on the VMs we measure on). */
void *ppx__bigbuf_alloc(size_t len);
void ppx__bigbuf_free(void *p, size_t len);

/* Feeds one record. Returns 1 and the frame when one is complete (it
 * points into the record or into rx; valid until the record is released
 * and ppx__rx_reset is called), 0 when more records are needed, or
 * PPX_EMALFORMED / PPX_ETOOBIG / PPX_ENOMEM. */
int ppx__rx_feed(ppx__rx *rx, const void *rec, size_t len, uint32_t flags,
                 const void **frame, size_t *flen);
/* Ends the current frame; the buffer is kept for the next one. */
void ppx__rx_done(ppx__rx *rx);
/* Ends the current frame and frees the buffer. */
void ppx__rx_reset(ppx__rx *rx);
/* Hands the finished frame's buffer (of *cap bytes) to the caller, who
 * frees it with ppx__bigbuf_free. */
void *ppx__rx_take(ppx__rx *rx, size_t *cap);

#endif
