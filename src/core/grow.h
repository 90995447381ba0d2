/* grow.h — growable host buffers: the one helper behind every "make room for n elements" in dealer.
 *
 * A buffer that grows to a batch's size at the first steps and then stays put is how the training loop avoids
 * allocating per step: capacities at least double, so a buffer filled element by element is reallocated a
 * logarithmic number of times, and a steady batch size reallocates never. (Device buffers: dl_mem_grow in
 * ops/ops.h.) */
#ifndef DL_CORE_GROW_H
#define DL_CORE_GROW_H

#include <stddef.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Makes *p (capacity *cap elements of `elem` bytes) hold at least `need` elements, keeping its content; `what`
 * names the buffer in the out-of-memory message. */
dl_status dl_grow(void **p, size_t *cap, size_t need, size_t elem, const char *what);

#ifdef __cplusplus
}
#endif

#endif
