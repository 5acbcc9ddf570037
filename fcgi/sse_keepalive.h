/*
 * sse_keepalive.h - how long an SSE stream of /v1 may stay silent (a long
 * prefill, a queue wait) before it sends a keep-alive: a ": keep-alive"
 * comment on the OpenAI endpoints, an `event: ping` on Anthropic's.
 *
 * The environment variable MLXM_SSE_KEEPALIVE_MS (a positive integer of
 * milliseconds, read at each call) overrides every endpoint's default; the
 * tests set it tiny to see keep-alives during a short prefill.
 *
 * Thread-safety: reads the environment only; safe from any thread as long
 * as nothing calls setenv while the daemon serves.
 */
#ifndef FCGI_SSE_KEEPALIVE_H
#define FCGI_SSE_KEEPALIVE_H

#define SSE_KEEPALIVE_ENV "MLXM_SSE_KEEPALIVE_MS"

/* The interval in milliseconds: MLXM_SSE_KEEPALIVE_MS when it is a positive
 * integer up to one hour, else default_ms. */
int sse_keepalive_ms(int default_ms);

#endif
