/* criterion.h -- just enough of Criterion's API to run tests/unit/ under ThreadSanitizer.
 *
 * Criterion itself cannot start under TSan: its BoxFort arena maps memory at a fixed
 * address that TSan's shadow memory owns (Snaipe/Criterion issue 274). The unit tests use
 * a small part of its API (Test, TestSuite with .init/.fini/.timeout, cr_assert*,
 * cr_log_*), so `make tsan` compiles them against this header instead, with -Itests/tsan
 * first on the include path, and links tests/tsan/runner.c, which runs every test in a
 * child process as Criterion does. The real Criterion runs them everywhere else.
 *
 * Rules: a failed assertion prints the place and the message and ends the child with
 * exit status 1 (Criterion's longjmp is not needed: each test has its own process).
 */
#ifndef REEL_TSAN_CRITERION_H
#define REEL_TSAN_CRITERION_H

#include <stdio.h>
#include <string.h>

struct shim_opts {
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    int disabled;
    const char *description;
};

void shim_register(const char *suite, const char *name, void (*fn)(void), struct shim_opts o);
void shim_suite(const char *suite, struct shim_opts o);
void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
void shim_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define Test(suite, name, ...)                                                             \
    static void suite##_##name##_test(void);                                               \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                    \
    {                                                                                      \
        shim_register(#suite, #name, suite##_##name##_test,                                \
                      (struct shim_opts){__VA_ARGS__});                                    \
    }                                                                                      \
    static void suite##_##name##_test(void)

#define TestSuite(suite, ...)                                                              \
    __attribute__((constructor)) static void suite##_suite_reg(void)                       \
    {                                                                                      \
        shim_suite(#suite, (struct shim_opts){__VA_ARGS__});                               \
    }

/* The message arguments are optional, as in Criterion: " " pastes onto a format string
 * (shim_fail() drops that first space), so the format is never empty. */
#define cr_assert(cond, ...)                                                               \
    do {                                                                                   \
        if (!(cond))                                                                       \
            shim_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                          \
    } while (0)
#define cr_assert_not(cond, ...) cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...) cr_assert(memcmp((a), (b), (n)) == 0, __VA_ARGS__)
#define cr_log_error(...) shim_log("error", __VA_ARGS__)
#define cr_log_info(...) shim_log("info", __VA_ARGS__)

#endif
