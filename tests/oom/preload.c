/* preload.c -- failmalloc.c as an LD_PRELOAD object for a whole process (a server).
 *
 * With FAILMALLOC_EVERY=N in the environment, SIGUSR1 arms the random mode (about one
 * allocation in N fails, FAILMALLOC_SEED picks which) and SIGUSR2 disarms it; the process
 * starts disarmed, so it can open its store and listen first. tests/fault/
 * test_oom_server.py drives a server this way: it must answer every request it can and
 * lose nothing it acknowledged, whatever allocation fails.
 *
 * The store's dictionary trainer is the same executable started anew (store/ztrain.c:
 * REEL_ZTRAIN_PARENT in its environment), so it loads this object too, but no signal
 * reaches it: it arms itself at start instead, so that libzstd's builder runs with
 * failing allocations (a crash there must cost the training only, never the server).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "tests/oom/failmalloc.h"

static long every;
static unsigned long seed;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        fm_arm_random(every, seed);
    else
        fm_disarm();
}

__attribute__((constructor)) static void preload_init(void)
{
    const char *e = getenv("FAILMALLOC_EVERY"), *s = getenv("FAILMALLOC_SEED");
    if (!e || (every = strtol(e, NULL, 10)) <= 0)
        return;
    seed = s ? strtoul(s, NULL, 10) : 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    if (getenv("REEL_ZTRAIN_PARENT"))
        fm_arm_random(every, seed);
}
