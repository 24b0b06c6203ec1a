/*
 * The one entry point of the server that the command line dispatches to.
 */
#ifndef TESSERA_SERVER_SERVE_H
#define TESSERA_SERVER_SERVE_H

/* Runs `tessera serve` with argv after "serve". Returns the process exit code (0, 1 failure, 2 usage). */
int tess_serve_main(int argc, char **argv);

#endif
