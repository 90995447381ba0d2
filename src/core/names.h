/* names.h — turning a name from the command line or a file into its index in a fixed table of names, with one
 * error that lists the names it knows, and the "did you mean" of errors about a misspelt name. */
#ifndef DL_CORE_NAMES_H
#define DL_CORE_NAMES_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *index = i where names[i] equals name (i < count); otherwise DL_ERR_INVALID "unknown WHAT 'NAME' (known: a, b,
 * c)". */
dl_status dl_name_lookup(const char *name, const char *const *names, int count, const char *what, int *index);

/* True when `candidate`, `distance` edits away from `name`, is close enough to offer as what was meant: about one
 * edit in three characters, and never a candidate that shares nothing with the name. */
int dl_name_close_enough(const char *name, const char *candidate, int distance);

/* The entry of names[0..count) nearest to `name` (edits with adjacent transpositions, case-insensitive) when it is
 * close enough to offer, else NULL. NULL entries are passed over. */
const char *dl_name_nearest(const char *name, const char *const *names, int count);

#ifdef __cplusplus
}
#endif

#endif
