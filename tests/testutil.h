/* testutil.h - helpers shared by the Criterion suites.
 *
 * Tests that need ../shared (real models, references, vocabularies) call
 * SHARED_OR_SKIP(path, "models/x.gguf"): it fills path, or skips the test
 * with a clear message when the directory is absent (a fresh clone). The
 * Makefile exports INFER_SHARED; the default is ../shared. */
#ifndef INFER_TESTUTIL_H
#define INFER_TESTUTIL_H

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "pool_testutil.h"

/* The one time limit a test may set (.timeout = TEST_TIMEOUT): Criterion
 * 2.4.1's runner leaks 48 bytes, and so fails `make asan` at exit after
 * every test has passed, when a test's deadline falls before that of a
 * test already running (one with .timeout = 90 started, one with 60 ended
 * first). One value for every test keeps the deadlines in start order;
 * `make test` refuses any other value. (Its --timeout option sets none.) */
#define TEST_TIMEOUT 60

static inline const char *shared_dir(void) {
    const char *d = getenv("INFER_SHARED");
    return d && *d ? d : "../shared";
}

/* 1 and path filled when shared_dir()/rel exists, else 0. */
static inline int shared_path(char *path, size_t cap, const char *rel) {
    struct stat st;
    snprintf(path, cap, "%s/%s", shared_dir(), rel);
    return stat(path, &st) == 0;
}

#define SHARED_OR_SKIP(path, rel)                                                         \
    do {                                                                                  \
        if (!shared_path((path), sizeof(path), (rel)))                                    \
            cr_skip_test("needs %s/%s (../shared is absent: skipped)", shared_dir(), (rel)); \
    } while (0)

/* Under ASan, LEAK_CHECK() fails the test when memory has leaked so far:
 * LeakSanitizer's report at process exit does not fail a Criterion test by
 * itself. Call it at the end of tests (and inside allocation-failure loops). */
#if defined(__SANITIZE_ADDRESS__)
#define INFER_TEST_LEAK_CHECKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INFER_TEST_LEAK_CHECKS 1
#endif
#endif
#ifdef INFER_TEST_LEAK_CHECKS
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() \
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (LeakSanitizer report above)")
#else
#define LEAK_CHECK() ((void)0)
#endif

/* Whole file into a malloc'd buffer (NULL if unreadable); *size set. */
static inline void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            ((char *)buf)[n] = '\0';
            *size = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* A deterministic generator for seeded random tests (splitmix64). */
static inline uint64_t test_rng(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform float in [lo, hi). */
static inline float test_uniform(uint64_t *state, float lo, float hi) {
    return lo + (hi - lo) * (float)((test_rng(state) >> 40) * (1.0 / 16777216.0));
}


/* ---- running the CLI --------------------------------------------------- */

/* Run argv (with env_set, "NAME=value", added to its environment unless
 * NULL) with stdin from /dev/null; capture stdout and stderr (stdout read
 * first: both stay below a pipe's 64 KiB in these tests); its exit code. */
static inline int test_run(char *const argv[], const char *env_set, char *out, size_t out_cap, char *err,
                           size_t err_cap) {
    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        if (env_set) putenv((char *)env_set);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    ssize_t r;
    while ((r = read(po[0], out + no, out_cap - 1 - no)) > 0) no += (size_t)r;
    while ((r = read(pe[0], err + ne, err_cap - 1 - ne)) > 0) ne += (size_t)r;
    out[no] = err[ne] = '\0';
    close(po[0]);
    close(pe[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st), "%s died by a signal", argv[0]);
    return WEXITSTATUS(st);
}

/* The infer binary under test (make test sets INFER_BIN), or skip. */
static inline const char *test_infer_bin(void) {
    const char *b = getenv("INFER_BIN");
    if (!b || !*b) cr_skip_test("INFER_BIN is not set (run through make test)");
    return b;
}

/* A GGUF file that must open (the test fails otherwise). */
static inline infer_gguf *test_open_gguf(const char *path) {
    infer_gguf *g = NULL;
    infer_error err;
    cr_assert_eq(infer_gguf_open(path, 0, &g, &err), INFER_OK, "%s: %s", path, err.message);
    return g;
}

/* t's name as a C string into name (INFER_GGUF_MAX_NAME + 1 bytes). */
static inline void test_tensor_name(const infer_gguf_tensor *t, char *name) {
    memcpy(name, t->name.ptr, t->name.len);
    name[t->name.len] = '\0';
}

/* The tensor of g with t's name, which must exist (what names g in the
 * failure); name receives the name as test_tensor_name gives it. */
static inline const infer_gguf_tensor *test_same_named(const infer_gguf *g, const infer_gguf_tensor *t, char *name,
                                                       const char *what) {
    test_tensor_name(t, name);
    const int64_t i = infer_gguf_find_tensor(g, name);
    cr_assert_geq(i, 0, "%s: no %s", what, name);
    return infer_gguf_tensor_at(g, (uint64_t)i);
}

/* The project's tool named tool (built beside $INFER_BIN) into buf; skips
 * as test_infer_bin does. Whether it exists is the caller's check. */
static inline char *test_tool_bin(char *buf, size_t cap, const char *tool) {
    const char *b = test_infer_bin(), *slash = strrchr(b, '/');
    if (slash) snprintf(buf, cap, "%.*s/%s", (int)(slash - b), b, tool);
    else snprintf(buf, cap, "%s", tool);
    return buf;
}

/* Occurrences of needle in hay, not overlapping. */
static inline size_t test_count(const char *hay, const char *needle) {
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle)) n++;
    return n;
}

/* The text of line k (0-based) of s that starts with "| " (a markdown
 * table row, as infer-bench prints them) into buf; 0 when there is none. */
static inline int test_md_row(const char *s, int k, char *buf, size_t cap) {
    for (const char *p = s; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 2 && p[0] == '|' && p[1] == ' ' && k-- == 0) {
            snprintf(buf, cap, "%.*s", (int)n, p);
            return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* Cell i (0-based) of a markdown row, trimmed. */
static inline void test_md_cell(const char *row, int i, char *buf, size_t cap) {
    const char *p = row;
    for (int k = 0; k <= i; k++) {
        p = strchr(p, '|');
        cr_assert(p, "row has no cell %d: %s", i, row);
        p++;
    }
    const char *e = strchr(p, '|');
    cr_assert(e);
    while (p < e && *p == ' ') p++;
    while (e > p && e[-1] == ' ') e--;
    snprintf(buf, cap, "%.*s", (int)(e - p), p);
}

/* This thread's CPU mask cut to its first k CPUs (children started from it
 * inherit it), the old mask in *saved; 0, changing nothing, when it has
 * fewer than k. Restore with sched_setaffinity(0, sizeof *saved, saved). */
static inline int test_pin_to_first(int k, cpu_set_t *saved) {
    cr_assert_eq(sched_getaffinity(0, sizeof *saved, saved), 0);
    if (CPU_COUNT(saved) < k) return 0;
    cpu_set_t s;
    CPU_ZERO(&s);
    for (int c = 0, got = 0; c < CPU_SETSIZE && got < k; c++)
        if (CPU_ISSET(c, saved)) CPU_SET(c, &s), got++;
    cr_assert_eq(sched_setaffinity(0, sizeof s, &s), 0);
    return 1;
}

/* Monotonic seconds. */
static inline double test_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The first CPU this process may use, and one the machine does not have
 * (the first past _SC_NPROCESSORS_CONF; -1 when a mask cannot name one).
 * Not merely one outside the affinity: a thread may widen its own to any
 * CPU of its cpuset, so a taskset'd process's other CPUs are no error. */
static inline void test_own_cpus(int *first, int *outside) {
    cpu_set_t own;
    cr_assert_eq(sched_getaffinity(0, sizeof own, &own), 0);
    *first = -1;
    for (int c = 0; c < CPU_SETSIZE && *first < 0; c++)
        if (CPU_ISSET(c, &own)) *first = c;
    const long conf = sysconf(_SC_NPROCESSORS_CONF);
    *outside = conf > 0 && conf < CPU_SETSIZE ? (int)conf : -1;
}

/* The hex mask (llama.cpp's -C) of one CPU into hex. */
static inline void test_cpu_hex(int cpu, char *hex, size_t cap) {
    cr_assert(cap >= 4 + (size_t)cpu / 4);
    snprintf(hex, cap, "0x%x", 1u << (cpu % 4));
    for (int k = 0; k < cpu / 4; k++) strcat(hex, "0");
}

#endif
