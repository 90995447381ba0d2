/* log.h — levelled logging with a rank prefix.
 *
 * Lines go to stderr as "[dealer r0 INFO] message". The rank is set once MPI is up (dl_log_set_rank); by default
 * only rank 0 prints INFO and DEBUG so a 64-rank job does not print every line 64 times, while every rank prints
 * warnings and errors. The level comes from dl_log_set_level or the DEALER_LOG environment variable
 * (debug|info|warn|error). */
#ifndef DL_CORE_LOG_H
#define DL_CORE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_log_level {
    DL_LOG_DEBUG = 0,
    DL_LOG_INFO = 1,
    DL_LOG_WARN = 2,
    DL_LOG_ERROR = 3,
} dl_log_level;

void dl_log_set_level(dl_log_level level);
dl_log_level dl_log_get_level(void);
/* Sets the rank shown in the prefix; ranks other than 0 print only warnings and errors unless all_ranks. */
void dl_log_set_rank(int rank, int all_ranks);
/* Reads DEALER_LOG; returns 0 when unset or valid, -1 when it holds an unknown level (the level is unchanged). */
int dl_log_init_from_env(void);
/* Parses "debug|info|warn|error"; returns 0 on success. */
int dl_log_parse_level(const char *text, dl_log_level *level);

void dl_log(dl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DL_DEBUG(...) dl_log(DL_LOG_DEBUG, __VA_ARGS__)
#define DL_INFO(...) dl_log(DL_LOG_INFO, __VA_ARGS__)
#define DL_WARN(...) dl_log(DL_LOG_WARN, __VA_ARGS__)
#define DL_ERROR(...) dl_log(DL_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
