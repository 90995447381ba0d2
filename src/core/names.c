/* names.c — looking a name up in a fixed table (names.h). */
#include "core/names.h"

#include <stdio.h>
#include <string.h>

dl_status dl_name_lookup(const char *name, const char *const *names, int count, const char *what, int *index) {
    DL_REQUIRE(names != NULL && what != NULL && index != NULL && count > 0, DL_ERR_INVALID,
               "dl_name_lookup: bad arguments");
    DL_REQUIRE(name != NULL, DL_ERR_INVALID, "no %s given", what);
    for (int i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0) {
            *index = i;
            return DL_OK;
        }
    char known[512] = "";
    size_t used = 0;
    for (int i = 0; i < count && used < sizeof known; i++) {
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return DL_FAIL(DL_ERR_INVALID, "unknown %s '%s' (known: %s)", what, name, known);
}
