/* runner.c -- runs tests/unit/ built against tests/tsan/criterion/criterion.h (why: see
 * that header). Each test runs in a child process with its suite's .init and .fini and a
 * timeout, as under Criterion; the runner prints failures and ends with the Criterion-like
 * line "Tested: N | Passing: N | Failing: N" (tests/run.sh reads it).
 *
 *   runner [--jobs N] [SUITE...]   the tests of the named suites, or every test; --jobs
 *                                  is accepted as Criterion's and ignored (one at a time)
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 1024
#define MAX_SUITES 64
#define DEFAULT_TIMEOUT 300

static struct test {
    const char *suite, *name;
    void (*fn)(void);
    struct shim_opts o;
} tests[MAX_TESTS];
static size_t n_tests;

static struct suite {
    const char *name;
    struct shim_opts o;
} suites[MAX_SUITES];
static size_t n_suites;

void shim_register(const char *suite, const char *name, void (*fn)(void), struct shim_opts o)
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "runner: more than %d tests\n", MAX_TESTS);
        exit(2);
    }
    tests[n_tests++] = (struct test){suite, name, fn, o};
}

void shim_suite(const char *suite, struct shim_opts o)
{
    if (n_suites == MAX_SUITES) {
        fprintf(stderr, "runner: more than %d suites\n", MAX_SUITES);
        exit(2);
    }
    suites[n_suites++] = (struct suite){suite, o};
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: assertion failed: %s", file, line, expr);
    fmt++; /* the space criterion.h put first */
    if (*fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

void shim_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const struct shim_opts *suite_opts(const char *name)
{
    for (size_t i = 0; i < n_suites; i++)
        if (!strcmp(suites[i].name, name))
            return &suites[i].o;
    return NULL;
}

static int wanted(const char *suite, int argc, char **argv)
{
    int named = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--jobs")) {
            i++;
            continue;
        }
        named = 1;
        if (!strcmp(argv[i], suite))
            return 1;
    }
    return !named;
}

/* Runs one test in a child; 1 when it passed. */
static int run(const struct test *t)
{
    const struct shim_opts *so = suite_opts(t->suite);
    double timeout = t->o.timeout > 0 ? t->o.timeout
                     : so && so->timeout > 0 ? so->timeout : DEFAULT_TIMEOUT;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("runner: fork");
        return 0;
    }
    if (pid == 0) {
        alarm((unsigned)timeout);
        void (*init)(void) = t->o.init ? t->o.init : so ? so->init : NULL;
        void (*fini)(void) = t->o.fini ? t->o.fini : so ? so->fini : NULL;
        if (init)
            init();
        t->fn();
        if (fini)
            fini();
        fflush(NULL);
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 1;
    if (WIFSIGNALED(st))
        fprintf(stderr, "[FAIL] %s::%s: killed by signal %d%s\n", t->suite, t->name,
                WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
    else
        fprintf(stderr, "[FAIL] %s::%s: exit status %d\n", t->suite, t->name, WEXITSTATUS(st));
    return 0;
}

int main(int argc, char **argv)
{
    size_t ran = 0, passed = 0;
    for (size_t i = 0; i < n_tests; i++) {
        if (tests[i].o.disabled || !wanted(tests[i].suite, argc, argv))
            continue;
        ran++;
        passed += (size_t)run(&tests[i]);
    }
    printf("[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: 0 \n", ran,
           passed, ran - passed);
    return passed == ran ? 0 : 1;
}
