/* names.c — looking a name up in a fixed table, and the nearest name to a misspelt one (names.h). The edit distance
 * is the config schema's (config_internal.h): one measure of "close" for config keys and command-line options. */
#include "core/names.h"

#include <stdio.h>
#include <string.h>

#include "core/config_internal.h"

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

int dl_name_close_enough(const char *name, const char *candidate, int distance) {
    size_t n = strlen(name), m = strlen(candidate);
    size_t longer = n > m ? n : m;
    int limit = longer <= 3 ? 1 : longer <= 6 ? 2 : 3;
    return distance <= limit && (size_t)distance < longer;
}

const char *dl_name_nearest(const char *name, const char *const *names, int count) {
    if (!name || !names)
        return NULL;
    const char *best = NULL;
    int best_distance = 1 << 30;
    for (int i = 0; i < count; i++) {
        if (!names[i])
            continue;
        int d = dl_cfg_edit_distance(name, names[i]);
        if (d < best_distance) {
            best_distance = d;
            best = names[i];
        }
    }
    return best && dl_name_close_enough(name, best, best_distance) ? best : NULL;
}
