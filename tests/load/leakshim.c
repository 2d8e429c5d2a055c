/* leakshim.c -- the negative control of test_leak.py: an LD_PRELOAD library that leaks one
 * block on purpose, so that the leak check must fail. A checker that passes this proves
 * nothing about reel.
 *
 * The block is allocated in a constructor and its only pointer dropped ("definitely
 * lost" for valgrind, a direct leak for LeakSanitizer). Built by the test with cc.
 */
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void leak_one_block(void)
{
    char *volatile p = malloc(4096);
    if (p)
        memset(p, 'L', 4096);
    p = NULL;
}
