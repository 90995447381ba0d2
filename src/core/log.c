/* log.c — see log.h. One formatted line per call, written with a single fputs so lines from threads and ranks
 * sharing a terminal do not interleave mid-line. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dl_log_level current_level = DL_LOG_INFO;
static int current_rank = -1;
static int print_all_ranks = 0;

/* Levels outside the enum would index past the tag table: clamp them to the nearest real level. */
static dl_log_level clamp_level(dl_log_level level) {
    if ((int)level < (int)DL_LOG_DEBUG)
        return DL_LOG_DEBUG;
    if ((int)level > (int)DL_LOG_ERROR)
        return DL_LOG_ERROR;
    return level;
}

void dl_log_set_level(dl_log_level level) { current_level = clamp_level(level); }

dl_log_level dl_log_get_level(void) { return current_level; }

void dl_log_set_rank(int rank, int all_ranks) {
    current_rank = rank;
    print_all_ranks = all_ranks;
}

int dl_log_parse_level(const char *text, dl_log_level *level) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (!text || !level)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            *level = (dl_log_level)i;
            return 0;
        }
    }
    return -1;
}

int dl_log_init_from_env(void) {
    const char *value = getenv("DEALER_LOG");
    if (!value || !*value)
        return 0;
    dl_log_level level;
    if (dl_log_parse_level(value, &level) != 0)
        return -1;
    current_level = level;
    return 0;
}

void dl_log(dl_log_level level, const char *fmt, ...) {
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    level = clamp_level(level);
    if (level < current_level)
        return;
    if (current_rank > 0 && !print_all_ranks && level < DL_LOG_WARN)
        return;
    char line[4096];
    int used; /* the prefix is short: snprintf cannot fill the line */
    if (current_rank >= 0)
        used = snprintf(line, sizeof line, "[dealer r%d %s] ", current_rank, tags[level]);
    else
        used = snprintf(line, sizeof line, "[dealer %s] ", tags[level]);
    size_t room = sizeof line - (size_t)used - 1; /* one byte kept for the newline */
    va_list ap;
    va_start(ap, fmt);
    int written = vsnprintf(line + used, room, fmt, ap);
    va_end(ap);
    if (written < 0)
        line[used] = '\0';
    else if ((size_t)written >= room)
        memcpy(line + sizeof line - 5, "...", 4); /* a cut line says so */
    size_t n = strlen(line);
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
}
