/*
 * Frames over ring records. A frame that fits one record travels whole;
 * a bigger one (up to the pool's max_payload) travels as a FIRST record
 * carrying the total length, MORE records and a LAST record, which the
 * reader reassembles. The writer puts as much as fits and resumes later,
 * so neither side has to hold the whole frame in the ring at once.
 */
#ifndef PPX_PROCPOOL_FRAME_H
#define PPX_PROCPOOL_FRAME_H
#include "shm/ring.h"

#include <stdbool.h>
#include <stddef.h>

enum { PPX__REC_WHOLE = 0, PPX__REC_FIRST = 1, PPX__REC_MORE = 2, PPX__REC_LAST = 3,
       PPX__REC_ARENA = 4, PPX__REC_OUTBOX = 5 };

/* Parent -> worker: a call frame lies in the call arena. The header the
 * worker acts on travels here, not in the frame: the parent may hand the
 * same frame to another worker (a steal, a respawn) while a stale record
 * still points at it, so the worker claims the slot with these values
 * before it reads a byte of the frame, and the parent never rewrites an
 * arena frame. */
typedef struct ppx__arena_rec {
    uint64_t off, len;
    uint64_t task_id;
    uint32_t slot, seq;
} ppx__arena_rec;
_Static_assert(sizeof(ppx__arena_rec) == 32, "record layout is shared ABI");

/* Worker -> parent: a reply frame of len bytes waits in the worker's
 * outbox; the parent copies it out and counts it in the worker's word of
 * ppx__shared_outbox_copied. */
typedef struct ppx__outbox_rec {
    uint64_t len;
} ppx__outbox_rec;

/* A frame is at most max_payload + PPX__FRAME_SLACK bytes: room for the
 * envelope around a payload of max_payload bytes (a call's header with a
 * 255-byte name), and for an error frame, which carries no payload but
 * may be longer than a small max_payload allows (a 4 KiB message). Frame
 * readers refuse anything longer; frame.c checks that it covers both. */
#define PPX__FRAME_SLACK 8192u

/* Frames at least this big go through the arena or an outbox when there
 * is one: below it a ring record is as cheap and needs no hand-shake. */
static inline size_t ppx__big_frame(size_t ring_bytes)
{
    return ring_bytes / 4;
}

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

/* Buffers for big payloads. From 8 MiB they are mapped with MAP_POPULATE,
 * which faults the whole range in one pass (a fresh 64 MiB faulted page
 * by page costs ~37 ms on the VMs we measure on), and the last one freed
 * is kept for the next request it can hold, so a steady stream of big
 * results reuses warm memory. *cap gets the buffer's real size, which
 * ppx__bigbuf_free needs back. */
void *ppx__bigbuf_alloc(size_t len, size_t *cap);
void ppx__bigbuf_free(void *p, size_t cap);
/* Unmaps the kept buffer: when a pool goes, and in every forked child. */
void ppx__bigbuf_trim(void);

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
