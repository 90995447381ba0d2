/* grow.c — growable host buffers (see grow.h). */
#include "core/grow.h"

#include <stdint.h>
#include <stdlib.h>

dl_status dl_grow(void **p, size_t *cap, size_t need, size_t elem, const char *what) {
    DL_REQUIRE(p && cap && elem > 0, DL_ERR_INVALID, "dl_grow: NULL buffer or zero element size");
    if (need <= *cap && *p)
        return DL_OK;
    size_t n = *cap > 16 ? *cap : 16;
    while (n < need && n <= SIZE_MAX / 2)
        n *= 2;
    DL_REQUIRE(n >= need && n <= SIZE_MAX / elem, DL_ERR_NOMEM, "%s: %zu elements of %zu bytes are too many",
               what ? what : "buffer", need, elem);
    void *q = realloc(*p, n * elem);
    DL_REQUIRE(q != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes for %s", n * elem, what ? what : "a buffer");
    *p = q;
    *cap = n;
    return DL_OK;
}
