/*
 * tc_check.h - the checks, the failure count and the summary shared by the C tests in host_tests/c/.
 *
 * A failed check prints one line to stderr and counts it in tc_check_failed:
 *     FAIL host_tests/c/test_dns.c:352 [the row's name]: n >= 12: response of 9 bytes, shorter than a header
 * that is the file and line of the check, the row being checked (only while tc_check_row is set), the expression
 * as written (only for a check on a condition) and the check's message (printf format and arguments).
 *
 * Checks that stop the test at once (exit status 1), for steps that the rest of the test builds on; usable from any
 * thread (a loop thread's callback, a worker):
 *   CHECK(cond, fmt, ...)      cond must hold.
 *   CHECK_RC(expr, want)       the tcp_core result code expr must equal want; both are printed with tc_err_name().
 *   FATAL(fmt, ...)            a failure found without one condition to show.
 *
 * Checks that fail one row of a table and let the other rows run (main thread only):
 *   ROW_CHECK(cond, fmt, ...)  cond must hold, else the calling function returns 1 (a row function returns int:
 *                              0 passed, 1 failed), so one bad row reports once.
 *   ROW_FAIL(fmt, ...)         report a failure found without one condition and carry on; the caller then returns 1.
 *
 * A check that carries on (main thread only):
 *   EXPECT(cond)               report when cond does not hold and continue; when it holds, it counts as passed.
 *
 * Counters and summary:
 *   tc_check_row               the name of the row being checked, set by the test (NULL: none); shown in reports.
 *   tc_check_failed            the failed checks so far.
 *   tc_check_passed            the rows passed (tc_check_tally()) and the EXPECTs that held.
 *   tc_check_tally(bad)        count a row function's result: 0 is one row passed (a failure was counted already).
 *   tc_check_summary()         print "<passed> passed, <failed> failed" and return main()'s exit status: 1 when any
 *                              check failed, else 0.
 *
 * How a test reports: a test of steps that build on each other uses CHECK / CHECK_RC / FATAL, prints its own OK
 * line at the end and returns 0 (a failure has already exited with 1). A table test gives each row an int function
 * using ROW_CHECK / ROW_FAIL, sets tc_check_row, passes each result to tc_check_tally() and ends main() with
 * `return tc_check_summary();`. A test of independent checks uses EXPECT and ends the same way when one failed.
 *
 * Include it as "tc_check.h" (found next to the test, no include path needed); it needs tc_err.h from
 * components/tcp_core/include for CHECK_RC.
 */
#ifndef TC_CHECK_H
#define TC_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tc_err.h"

static const char *tc_check_row;
static int tc_check_failed;
static int tc_check_passed;

#if defined(__GNUC__)
#define TC_CHECK_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#else
#define TC_CHECK_PRINTF_(f, a)
#endif

/* Starts a report: "FAIL file:line [row]: expr" (expr may be NULL), with stderr locked so that the report stays one
 * line when several threads fail at once; tc_check_end_() finishes it. */
static inline void tc_check_begin_(const char *file, int line, const char *expr)
{
    flockfile(stderr);
    fprintf(stderr, "FAIL %s:%d", file, line);
    if (tc_check_row != NULL) {
        fprintf(stderr, " [%s]", tc_check_row);
    }
    fprintf(stderr, ": %s", expr != NULL ? expr : "");
}

static inline void tc_check_end_(void)
{
    fputc('\n', stderr);
    funlockfile(stderr);
    tc_check_failed++;
}

/* Reports a failure with a message; expr is NULL for a failure without one condition (ROW_FAIL, FATAL). */
static inline TC_CHECK_PRINTF_(4, 5) void tc_check_fail(const char *file, int line, const char *expr, const char *fmt,
                                                        ...)
{
    tc_check_begin_(file, line, expr);
    if (expr != NULL) {
        fputs(": ", stderr);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    tc_check_end_();
}

/* Reports a failed expression without a message (EXPECT). */
static inline void tc_check_fail_expr(const char *file, int line, const char *expr)
{
    tc_check_begin_(file, line, expr);
    tc_check_end_();
}

static inline void tc_check_tally(int bad)
{
    tc_check_passed += !bad;
}

static inline int tc_check_summary(void)
{
    printf("%d passed, %d failed\n", tc_check_passed, tc_check_failed);
    return tc_check_failed ? 1 : 0;
}

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            tc_check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                                     \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

#define CHECK_RC(expr, want)                                                                                           \
    do {                                                                                                               \
        int tc_check_rc_ = (int)(expr);                                                                                \
        if (tc_check_rc_ != (int)(want)) {                                                                             \
            tc_check_fail(__FILE__, __LINE__, #expr " == " #want, "got %d (%s), want %d (%s)", tc_check_rc_,           \
                          tc_err_name(tc_check_rc_), (int)(want), tc_err_name((int)(want)));                           \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

#define FATAL(...)                                                                                                     \
    do {                                                                                                               \
        tc_check_fail(__FILE__, __LINE__, NULL, __VA_ARGS__);                                                          \
        exit(1);                                                                                                       \
    } while (0)

#define ROW_CHECK(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            tc_check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                                     \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

#define ROW_FAIL(...) tc_check_fail(__FILE__, __LINE__, NULL, __VA_ARGS__)

#define EXPECT(cond)                                                                                                   \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            tc_check_passed++;                                                                                         \
        } else {                                                                                                       \
            tc_check_fail_expr(__FILE__, __LINE__, #cond);                                                             \
        }                                                                                                              \
    } while (0)

#endif /* TC_CHECK_H */
