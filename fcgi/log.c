#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = 2;
static char *log_path;
static int log_json = 1;
static enum log_level log_min = LOG_LEVEL_INFO;

/* The ring: slot seq % LOG_RING_LINES holds line number seq. */
static pthread_mutex_t log_ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_ring_cond = PTHREAD_COND_INITIALIZER;
static char *log_ring[LOG_RING_LINES];
static unsigned long long log_ring_seq; /* the newest line's number, 0 = none */

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

static int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && !strcmp(s, log_level_names[i])) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_set_level(const char *level)
{
    enum log_level l;
    if (log_parse_level(level, &l))
        return -1;
    __atomic_store_n(&log_min, l, __ATOMIC_RELAXED);
    return 0;
}

static int log_open_fd(const char *path)
{
    if (!path || !*path)
        return 2;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int log_open(const char *path, int json, const char *level)
{
    int fd = log_open_fd(path);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&log_lock);
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    free(log_path);
    log_path = path && *path ? strdup(path) : NULL;
    log_json = json;
    pthread_mutex_unlock(&log_lock);
    if (level)
        log_set_level(level);
    return 0;
}

int log_reopen(void)
{
    pthread_mutex_lock(&log_lock);
    int rc = 0;
    if (log_path) {
        int fd = log_open_fd(log_path);
        if (fd < 0) {
            rc = -1;
        } else {
            if (log_fd > 2)
                close(log_fd);
            log_fd = fd;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
    free(log_path);
    log_path = NULL;
    pthread_mutex_unlock(&log_lock);
    log_ring_clear();
}

static void log_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void log_write_line(const char *line)
{
    size_t len = strlen(line);
    pthread_mutex_lock(&log_lock);
    /* One write per line keeps concurrent lines whole (O_APPEND). */
    char *buf = malloc(len + 1);
    if (buf) {
        memcpy(buf, line, len);
        buf[len] = '\n';
        ssize_t off = 0;
        while ((size_t)off < len + 1) {
            ssize_t w = write(log_fd, buf + off, len + 1 - (size_t)off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += w;
        }
        free(buf);
    }
    pthread_mutex_unlock(&log_lock);
}

/* Takes ownership of `line`. */
void log_ring_clear(void);

static void log_ring_push(char *line)
{
    if (strlen(line) > LOG_RING_LINE_MAX) {
        free(line);
        return;
    }
    pthread_mutex_lock(&log_ring_lock);
    log_ring_seq++;
    char **slot = &log_ring[log_ring_seq % LOG_RING_LINES];
    char *old = *slot;
    *slot = line;
    pthread_cond_broadcast(&log_ring_cond);
    pthread_mutex_unlock(&log_ring_lock);
    free(old);
}

int log_ring_read(unsigned long long after, char **lines, unsigned long long *seqs, int max)
{
    int n = 0;
    pthread_mutex_lock(&log_ring_lock);
    unsigned long long first =
        log_ring_seq > LOG_RING_LINES ? log_ring_seq - LOG_RING_LINES + 1 : 1;
    if (after + 1 > first)
        first = after + 1;
    for (unsigned long long seq = first; seq <= log_ring_seq && n < max; seq++) {
        const char *l = log_ring[seq % LOG_RING_LINES];
        char *copy = l ? strdup(l) : NULL;
        if (!copy)
            continue;
        lines[n] = copy;
        seqs[n] = seq;
        n++;
    }
    pthread_mutex_unlock(&log_ring_lock);
    return n;
}

unsigned long long log_ring_wait(unsigned long long after, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&log_ring_lock);
    while (log_ring_seq <= after) {
        if (pthread_cond_timedwait(&log_ring_cond, &log_ring_lock, &deadline) != 0)
            break;
    }
    unsigned long long seq = log_ring_seq;
    pthread_mutex_unlock(&log_ring_lock);
    return seq;
}

void log_ring_clear(void)
{
    pthread_mutex_lock(&log_ring_lock);
    for (int i = 0; i < LOG_RING_LINES; i++) {
        free(log_ring[i]);
        log_ring[i] = NULL;
    }
    pthread_mutex_unlock(&log_ring_lock);
}

void log_event(enum log_level level, const char *msg, const cJSON *fields)
{
    if (level < __atomic_load_n(&log_min, __ATOMIC_RELAXED))
        return;
    char ts[40];
    log_timestamp(ts, sizeof(ts));
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "ts", ts);
    cJSON_AddStringToObject(o, "level", log_level_names[level]);
    cJSON_AddStringToObject(o, "msg", msg);
    for (const cJSON *f = fields ? fields->child : NULL; f; f = f->next)
        cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, 1));
    /* The ring keeps the JSON form whatever the file's format is. */
    char *json_line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json_line && log_json)
        log_write_line(json_line);
    if (json_line)
        log_ring_push(json_line);
    if (log_json)
        return;
    char *extra = fields ? cJSON_PrintUnformatted(fields) : NULL;
    size_t n = strlen(ts) + strlen(msg) + (extra ? strlen(extra) : 0) + 16;
    char *line = malloc(n);
    if (line) {
        snprintf(line, n, "%s %-5s %s%s%s", ts, log_level_names[level], msg, extra ? " " : "",
                 extra ? extra : "");
        log_write_line(line);
        free(line);
    }
    free(extra);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < __atomic_load_n(&log_min, __ATOMIC_RELAXED))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_event(level, buf, NULL);
}
