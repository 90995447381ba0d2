/* names.h — turning a name from the command line or a file into its index in a fixed table of names, with one
 * error that lists the names it knows. */
#ifndef DL_CORE_NAMES_H
#define DL_CORE_NAMES_H

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *index = i where names[i] equals name (i < count); otherwise DL_ERR_INVALID "unknown WHAT 'NAME' (known: a, b,
 * c)". */
dl_status dl_name_lookup(const char *name, const char *const *names, int count, const char *what, int *index);

#ifdef __cplusplus
}
#endif

#endif
