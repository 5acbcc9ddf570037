/*
 * server.h - the FastCGI side of the daemon: the listening socket, the
 * worker threads (one FCGX_Request, one arena and one database connection
 * each) and the signal thread.
 *
 * server_run() blocks until SIGTERM/SIGINT, lets in-flight requests finish,
 * joins the workers and returns 0.  SIGHUP reopens the log file.
 */
#ifndef FCGI_SERVER_H
#define FCGI_SERVER_H

struct app;

/* Serves until told to stop; returns 0 on a clean stop, -1 on startup failure. */
int server_run(struct app *app);

#endif
