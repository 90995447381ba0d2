/* memstat.h — what this process holds in memory, as the kernel counts it (/proc/self/status). */
#ifndef DL_CORE_MEMSTAT_H
#define DL_CORE_MEMSTAT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The "FIELD  N kB" line of /proc/self/status in KiB (FIELD with its colon: "VmRSS:" resident now, "VmHWM:" peak
 * resident, "RssFile:" file pages resident), or -1 where there is none (not Linux, an older kernel). */
int64_t dl_memstat_kib(const char *field);

#ifdef __cplusplus
}
#endif

#endif
