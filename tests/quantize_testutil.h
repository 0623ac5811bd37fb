/* quantize_testutil.h - helpers shared by the quantize suites
 * (test_quantize.c, test_quantize_tool.c, test_quantize_synth.c,
 * test_quantize_imatrix.c): normal random values from a seed, the tools
 * run as programs (found next to $INFER_BIN, the test skipped when they
 * are not built) in a fresh directory that holds their stdout and stderr,
 * and checks of what they made (exit status, tensor types, a refusal, a
 * model that decodes). Header-only; each suite
 * file gets its own static copy. */
#ifndef INFER_TEST_QUANTIZE_TESTUTIL_H
#define INFER_TEST_QUANTIZE_TESTUTIL_H

#include <fcntl.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infer.h"
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

/* dir/name (path: 600 bytes), an F16 infer-synth model of n_embd 256 and 4
 * heads with the shape given (numbers as the options take them). */
static inline void synth_f16(const char *dir, const char *name, char *path, const char *n_layer,
                             const char *n_head_kv, const char *n_ff, const char *n_vocab);

/* ======================= results of the tools ===================================== */

/* Greedy next token after decoding ids. */
static inline int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Decode the prompt ids, keep its logits (malloc'd, n_vocab floats), then
 * generate n_gen greedy tokens into out, checking every logit is finite. */
static inline float *decode_greedy(const char *path, const int32_t *ids, size_t n_ids, int n_gen, int32_t *out) {
    infer_model *m = NULL;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_model_load(path, NULL, &m, &err), INFER_OK, "%s: %s", path, err.message);
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 64;
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    const int32_t nv = infer_model_n_vocab(m);
    cr_assert_eq(infer_decode(c, ids, n_ids, 0, &err), INFER_OK, "%s", err.message);
    float *first = malloc((size_t)nv * sizeof(float));
    cr_assert_not_null(first);
    memcpy(first, infer_logits(c), (size_t)nv * sizeof(float));
    for (int i = 0; i < n_gen; i++) {
        const float *l = infer_logits(c);
        for (int32_t k = 0; k < nv; k++) cr_assert(isfinite(l[k]), "%s: logit %d of step %d", path, k, i);
        out[i] = argmax(l, nv);
        cr_assert_eq(infer_decode(c, &out[i], 1, 0, &err), INFER_OK, "%s", err.message);
    }
    infer_context_free(c);
    infer_model_release(m);
    return first;
}

/* Run tool with args and assert it exits 0 (its stderr in the message). */
static inline void tool_ok(const char *tool, const char *dir, const char *const *args) {
    const int rc = run_tool(tool, dir, args);
    char *e = tool_stderr(dir);
    const char *a1 = args[0] && args[1] ? args[1] : "", *a2 = args[0] && args[1] && args[2] ? args[2] : "";
    cr_assert_eq(rc, 0, "%s %s %s %s: exit %d: %s", tool, args[0] ? args[0] : "", a1, a2, rc, e);
    free(e);
}

static inline void synth_f16(const char *dir, const char *name, char *path, const char *n_layer,
                             const char *n_head_kv, const char *n_ff, const char *n_vocab) {
    snprintf(path, 600, "%s/%s", dir, name);
    const char *args[] = {path, "--n-embd", "256", "--n-layer", n_layer, "--n-head", "4", "--n-head-kv", n_head_kv,
                          "--n-ff", n_ff, "--n-vocab", n_vocab, "--type", "F16", NULL};
    tool_ok("infer-synth", dir, args);
}

/* Run infer-quantize with args (IN OUT TYPE ...), assert it exits 0 and
 * open its output. */
static inline infer_gguf *quantize_ok(const char *dir, const char *const *args) {
    tool_ok("infer-quantize", dir, args);
    return test_open_gguf(args[1]);
}

/* The type infer-quantize gave tensor name in g. */
static inline uint32_t type_of(infer_gguf *g, const char *name) {
    const int64_t j = infer_gguf_find_tensor(g, name);
    cr_assert_geq(j, 0, "%s", name);
    return infer_gguf_tensor_at(g, (uint64_t)j)->type;
}

/* infer-quantize args exits with status saying says, and leaves no out
 * (when named). */
static inline void expect_exit(const char *dir, const char *const *args, int status, const char *out,
                               const char *says) {
    cr_expect_eq(run_tool("infer-quantize", dir, args), status, "%s", says);
    char *e = tool_stderr(dir);
    cr_expect(strstr(e, says) != NULL, "wanted \"%s\" in: %s", says, e);
    free(e);
    if (out) cr_expect_neq(access(out, F_OK), 0, "%s: wrote %s", says, out);
}

/* infer-quantize args (IN OUT TYPE ...) exits 2 saying says, and leaves no
 * OUT. */
static inline void expect_refused(const char *dir, const char *const *args, const char *says) {
    remove(args[1]);
    expect_exit(dir, args, 2, args[1], says);
}

/* The files at paths a (infer-quantize's) and b are the same bytes (the
 * first difference's offset in the message). */
static inline void expect_same_file(const char *what, const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = read_file(a, &na), *y = read_file(b, &nb);
    cr_assert(x && y, "%s: cannot read the files", what);
    size_t i = 0;
    while (i < na && i < nb && x[i] == y[i]) i++;
    cr_expect(na == nb && i == na, "%s: %zu bytes, the other %zu; first difference at byte %zu", what, na, nb, i);
    free(x);
    free(y);
}

#endif
