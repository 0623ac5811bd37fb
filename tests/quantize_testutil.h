/* quantize_testutil.h - helpers shared by the quantize suites
 * (test_quantize.c, test_quantize_tool.c, test_quantize_synth.c): normal
 * random values from a seed, and the tools run as programs (found next to
 * $INFER_BIN, the test skipped when they are not built) in a fresh
 * directory that holds their stdout and stderr. Header-only; each suite
 * file gets its own static copy. */
#ifndef INFER_TEST_QUANTIZE_TESTUTIL_H
#define INFER_TEST_QUANTIZE_TESTUTIL_H

#include <fcntl.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* A normal random value (Box-Muller). */
static inline float gaussian(uint64_t *rng) {
    double u1 = ((double)(test_rng(rng) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(test_rng(rng) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ======================= running the tools ======================================== */

/* $INFER_BIN's directory + "/" + tool, or skip. */
static inline void tool_path(char *out, size_t cap, const char *tool) {
    test_tool_bin(out, cap, tool);
    if (access(out, X_OK) != 0) cr_skip_test("%s is not built", out);
}

/* A fresh directory for one test's files. */
static inline void temp_dir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/infer-test-quantize-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static inline void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Run tool with args (NULL-terminated), stdout and stderr to dir/out.txt
 * and dir/err.txt; returns the exit status (128 + signal when killed). */
static inline int run_tool(const char *tool, const char *dir, const char *const *args) {
    char exe[600], out[600], err[600];
    const char *argv[32];
    size_t n = 0;
    tool_path(exe, sizeof exe, tool);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    argv[n++] = exe;
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(n, 31, "too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* dir/err.txt (malloc'd, NUL-terminated). */
static inline char *tool_stderr(const char *dir) {
    char path[600];
    size_t n;
    snprintf(path, sizeof path, "%s/err.txt", dir);
    char *s = read_file(path, &n);
    cr_assert_not_null(s);
    return s;
}

#endif
