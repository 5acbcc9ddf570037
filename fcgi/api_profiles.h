/*
 * api_profiles.h - how the HTTP handlers that take a profile id in their
 * path (api_profiles.c, api_servers.c) read it and say that it names no
 * profile, so every route answers the same 404.  Thread-safe (no state).
 */
#ifndef FCGI_API_PROFILES_H
#define FCGI_API_PROFILES_H

struct http_request;

/* Answers 404 "no profile with id '...'" quoting the path capture `name`;
 * returns the status. */
int api_profile_not_found(struct http_request *req, const char *name);

/* The profile id in the path capture `name`, a positive integer; -1 after
 * answering api_profile_not_found for anything else. */
long long api_profile_id(struct http_request *req, const char *name);

#endif
