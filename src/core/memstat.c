/* memstat.c — fields of /proc/self/status (memstat.h). */
#include "core/memstat.h"

#include <stdio.h>
#include <string.h>

int64_t dl_memstat_kib(const char *field) {
    if (!field)
        return -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long long kib = -1;
    const size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) {
            if (sscanf(line + n, " %lld", &kib) != 1)
                kib = -1;
            break;
        }
    fclose(f);
    return (int64_t)kib;
}
