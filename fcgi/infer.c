#include "infer.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

struct infer_node {
    struct infer_event *ev;
    struct infer_node *next;
};

struct infer_stream {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct infer_node *head, *tail;
    int done_queued; /* the DONE event is in the queue or was taken */
    int done_taken;
    int oom; /* an event could not be copied: deliver an error DONE */
    struct engine_request *req;
    const struct engine_model *model; /* the model req runs on, for infer_cancel_model */
    double last_token_ms;             /* scheduler thread only: when the previous token came */
    struct infer_stream *live_prev, *live_next; /* infer_live, under infer_live_lock */
};

/* Every stream between infer_start and infer_free, for infer_cancel_all and
 * infer_cancel_model. */
static pthread_mutex_t infer_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct infer_stream *infer_live;

static double infer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static char *infer_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static struct infer_event *infer_copy(const struct engine_event *e)
{
    struct infer_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return NULL;
    ev->kind = e->kind;
    ev->token = e->token;
    ev->text = infer_strndup(e->text ? e->text : "", e->text ? e->text_len : 0);
    ev->text_len = e->text ? e->text_len : 0;
    if (e->logprobs) {
        ev->has_logprobs = 1;
        ev->logprobs = *e->logprobs;
    }
    ev->finish = e->finish;
    ev->status = e->status;
    snprintf(ev->error, sizeof(ev->error), "%s", e->error ? e->error : "");
    if (e->stop_string)
        ev->stop_string = infer_strndup(e->stop_string, strlen(e->stop_string));
    ev->usage = e->usage;
    if (!ev->text || (e->stop_string && !ev->stop_string)) {
        infer_event_free(ev);
        return NULL;
    }
    return ev;
}

/* Runs on the scheduler thread. */
static void infer_on_event(const struct engine_event *e, void *user)
{
    struct infer_stream *s = user;
    if (e->kind == ENGINE_EVENT_TOKEN) {
        /* Measured where tokens are made, not where the worker drains them. */
        double now = infer_now_ms();
        if (s->last_token_ms > 0)
            metrics_observe_token_gap(now - s->last_token_ms);
        s->last_token_ms = now;
    }
    struct infer_event *ev = infer_copy(e);
    struct infer_node *node = ev ? malloc(sizeof(*node)) : NULL;
    pthread_mutex_lock(&s->lock);
    if (node) {
        node->ev = ev;
        node->next = NULL;
        if (s->tail)
            s->tail->next = node;
        else
            s->head = node;
        s->tail = node;
    } else {
        infer_event_free(ev);
        s->oom = 1;
    }
    if (e->kind == ENGINE_EVENT_DONE)
        s->done_queued = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    /* Without memory for the events the client cannot be served: stop. */
    if (!node && e->kind != ENGINE_EVENT_DONE)
        engine_cancel(s->req);
}

enum status infer_start(struct engine_model *m, struct engine_request_desc *desc,
                        struct infer_stream **out, char *err, size_t errlen)
{
    struct infer_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return status_fail(err, errlen, ST_ERR_NOMEM, "out of memory");
    s->model = m;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    desc->on_event = infer_on_event;
    desc->user = s;
    /* The scheduler may deliver events before engine_submit returns, and
     * the callback may call engine_cancel(s->req): hold the lock so the
     * callback waits until req is set. */
    pthread_mutex_lock(&s->lock);
    enum status st = engine_submit(m, desc, &s->req, err, errlen);
    pthread_mutex_unlock(&s->lock);
    if (st != ST_OK) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return st;
    }
    pthread_mutex_lock(&infer_live_lock);
    s->live_next = infer_live;
    if (infer_live)
        infer_live->live_prev = s;
    infer_live = s;
    pthread_mutex_unlock(&infer_live_lock);
    *out = s;
    return ST_OK;
}

/* Cancels the live streams of model m (every one when m is NULL). */
static int infer_cancel_live(const struct engine_model *m)
{
    int n = 0;
    pthread_mutex_lock(&infer_live_lock);
    for (struct infer_stream *s = infer_live; s; s = s->live_next)
        if (!m || s->model == m) {
            engine_cancel(s->req);
            n++;
        }
    pthread_mutex_unlock(&infer_live_lock);
    return n;
}

int infer_cancel_all(void)
{
    return infer_cancel_live(NULL);
}

int infer_cancel_model(const struct engine_model *m)
{
    return infer_cancel_live(m);
}

int infer_next(struct infer_stream *s, int timeout_ms, struct infer_event **ev)
{
    *ev = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->done_taken) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    while (!s->head) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&s->cond, &s->lock)
                                : pthread_cond_timedwait(&s->cond, &s->lock, &deadline);
        if (rc == ETIMEDOUT && !s->head) {
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
    }
    struct infer_node *node = s->head;
    s->head = node->next;
    if (!s->head)
        s->tail = NULL;
    *ev = node->ev;
    free(node);
    if ((*ev)->kind == ENGINE_EVENT_DONE) {
        s->done_taken = 1;
        metrics_note_usage(&(*ev)->usage); /* this worker's request record */
        if (s->oom && (*ev)->finish != ENGINE_FINISH_ERROR) {
            (*ev)->finish = ENGINE_FINISH_ERROR;
            (*ev)->status = ST_ERR_NOMEM;
            snprintf((*ev)->error, sizeof((*ev)->error), "out of memory delivering tokens");
        }
    }
    pthread_mutex_unlock(&s->lock);
    return 1;
}

void infer_event_free(struct infer_event *ev)
{
    if (!ev)
        return;
    free(ev->text);
    free(ev->stop_string);
    free(ev);
}

void infer_cancel(struct infer_stream *s)
{
    engine_cancel(s->req);
}

const int32_t *infer_prompt(const struct infer_stream *s, int *n)
{
    return engine_request_prompt(s->req, n);
}

void infer_free(struct infer_stream *s)
{
    if (!s)
        return;
    /* Out of the list first: infer_cancel_all must not reach a released request. */
    pthread_mutex_lock(&infer_live_lock);
    if (s->live_prev)
        s->live_prev->live_next = s->live_next;
    else
        infer_live = s->live_next;
    if (s->live_next)
        s->live_next->live_prev = s->live_prev;
    pthread_mutex_unlock(&infer_live_lock);
    /* Waits for the DONE callback, so nothing touches s afterwards. */
    engine_request_release(s->req);
    for (struct infer_node *n = s->head; n;) {
        struct infer_node *next = n->next;
        infer_event_free(n->ev);
        free(n);
        n = next;
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
