/* version.h -- what this build of reel is: its version and the commit it was built from.
 *
 * REEL_VERSION is the release number (bumped by hand with the format and API notes in
 * docs/); reel_build_commit is `git describe --always --dirty` at build time, or "unknown"
 * outside a git checkout (a tarball). Both are constant for the life of the process; the
 * CLI prints them (`reel --version`), the server serves them (/v1/health, the
 * reel_build_info metric).
 */
#ifndef REEL_VERSION_H
#define REEL_VERSION_H

#define REEL_VERSION "0.5.0"

extern const char reel_build_commit[];

#endif
