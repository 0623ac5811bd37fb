/*
 * test_cli_generate.c - the `infer` program as a user runs it: generated
 * text alone on stdout, timings on stderr, exit statuses 0/1/2/3, a full
 * context stopping with a message, -f reading the prompt verbatim.
 * INFER_BIN (set by `make test`) names the binary.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Run argv with stdin from /dev/null; capture stdout and stderr. */
static int run(char *const argv[], char *out, size_t out_cap, char *err, size_t err_cap) {
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
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    ssize_t r;
    /* stdout first, then stderr: both stay small in these tests (< 64 KiB pipes). */
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

static const char *bin(void) {
    const char *b = getenv("INFER_BIN");
    if (!b || !*b) cr_skip_test("INFER_BIN is not set (run through make test)");
    return b;
}

Test(cli_generate, greedy_text_alone_on_stdout) {
    char model[512], ref[512], prompt[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    SHARED_OR_SKIP(ref, "reference/greedy/stories260K.1.txt");
    SHARED_OR_SKIP(prompt, "reference/greedy/stories260K.1.prompt.txt");
    size_t n;
    char *want = read_file(ref, &n), *p = read_file(prompt, &n);
    static char out[65536], err[65536];
    char *argv[] = {(char *)bin(), model, "-p", p, "-n", "128", "--temp", "0", NULL};
    cr_assert_eq(run(argv, out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
    cr_assert_str_eq(out, want, "stdout must be exactly the generated text");
    cr_assert(strstr(err, "eval time") != NULL, "timings go to stderr: %s", err);
    free(want);
    free(p);
}

Test(cli_generate, prompt_file_read_verbatim) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    char path[] = "/tmp/infer-prompt-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "Once upon a time\n", 17), 17);
    close(fd);
    static char out[4096], err[4096];
    char *argv[] = {(char *)bin(), model, "--tokenize", "--no-bos", "-f", path, NULL};
    cr_assert_eq(run(argv, out, sizeof out, err, sizeof err), 0, "%s", err);
    unlink(path);
    /* The trailing newline is part of the prompt: its token ends the list. */
    char *argv2[] = {(char *)bin(), model, "--tokenize", "--no-bos", "-p", "Once upon a time", NULL};
    static char out2[4096];
    cr_assert_eq(run(argv2, out2, sizeof out2, err, sizeof err), 0);
    cr_assert(strlen(out) > strlen(out2), "'%s' vs '%s'", out, out2);
    cr_assert_eq(strncmp(out, out2, strlen(out2) - 1), 0, "'%s' vs '%s'", out, out2);
}

Test(cli_generate, exit_statuses) {
    static char out[65536], err[65536];
    char *usage[] = {(char *)bin(), "--no-such-flag", NULL};
    cr_assert_eq(run(usage, out, sizeof out, err, sizeof err), 1);
    char *bad_n[] = {(char *)bin(), "m.gguf", "-p", "x", "-n", "many", NULL};
    cr_assert_eq(run(bad_n, out, sizeof out, err, sizeof err), 1);
    char *missing[] = {(char *)bin(), "/nonexistent/model.gguf", "-p", "x", NULL};
    cr_assert_eq(run(missing, out, sizeof out, err, sizeof err), 2);
    cr_assert_str_empty(out);
    cr_assert(strncmp(err, "infer: /nonexistent/model.gguf: ", 32) == 0, "%s", err);
    char vocab[512];
    if (shared_path(vocab, sizeof vocab, "vocab/ggml-vocab-gpt-2.gguf")) {
        /* A vocabulary-only file cannot generate: rejected, status 2. */
        char *novocab[] = {(char *)bin(), vocab, "-p", "hi", NULL};
        cr_assert_eq(run(novocab, out, sizeof out, err, sizeof err), 2, "%s", err);
    }
}

Test(cli_generate, full_context_stops_with_a_message) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char out[65536], err[65536];
    char *argv[] = {(char *)bin(), model, "-p", "Once upon a time", "-c", "32", "-n", "100", "--temp", "0", NULL};
    cr_assert_eq(run(argv, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "context full") != NULL, "%s", err);
    char *shift[] = {(char *)bin(), model, "-p", "Once upon a time", "-c", "32", "-n", "100", "--temp", "0",
                     "--context-shift", NULL};
    cr_assert_eq(run(shift, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "context full") == NULL, "%s", err);
    cr_assert(strstr(err, "100 runs") != NULL, "all 100 tokens generated: %s", err);
}
