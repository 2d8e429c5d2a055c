/* version.c -- the build's commit (version.h); REEL_COMMIT comes from the Makefile, which
 * rebuilds this one file when the commit changes. */
#include "store/version.h"

#ifndef REEL_COMMIT
#define REEL_COMMIT "unknown"
#endif

const char reel_build_commit[] = REEL_COMMIT;
