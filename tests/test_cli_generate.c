/*
 * test_cli_generate.c - the `infer` program as a user runs it: generated
 * text alone on stdout, timings on stderr, exit statuses 0/1/2/3, a full
 * context stopping with a message, -f reading the prompt verbatim, -e's
 * escapes and the llama-cli options infer takes.
 * INFER_BIN (set by `make test`) names the binary.
 */

#include <math.h>

#include "synth.h"
#include "testutil.h"

Test(cli_generate, greedy_text_alone_on_stdout) {
    char model[512], ref[512], prompt[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    SHARED_OR_SKIP(ref, "reference/greedy/stories260K.1.txt");
    SHARED_OR_SKIP(prompt, "reference/greedy/stories260K.1.prompt.txt");
    size_t n;
    char *want = read_file(ref, &n), *p = read_file(prompt, &n);
    static char out[65536], err[65536];
    char *argv[] = {(char *)test_infer_bin(), model, "-p", p, "-n", "128", "--temp", "0", NULL};
    cr_assert_eq(test_run(argv, NULL, out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
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
    char *argv[] = {(char *)test_infer_bin(), model, "--tokenize", "--no-bos", "-f", path, NULL};
    cr_assert_eq(test_run(argv, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
    unlink(path);
    /* The trailing newline is part of the prompt: its token ends the list. */
    char *argv2[] = {(char *)test_infer_bin(), model, "--tokenize", "--no-bos", "-p", "Once upon a time", NULL};
    static char out2[4096];
    cr_assert_eq(test_run(argv2, NULL, out2, sizeof out2, err, sizeof err), 0);
    cr_assert(strlen(out) > strlen(out2), "'%s' vs '%s'", out, out2);
    cr_assert_eq(strncmp(out, out2, strlen(out2) - 1), 0, "'%s' vs '%s'", out, out2);
}

/* -e processes llama.cpp's escapes in -p's text: the ids of "x\\x41\\n\\t\\q"
 * with -e are those of "xA", a newline, a tab and "\\q" (an unknown escape
 * stays as it is); without -e (or with --no-escape after it) the
 * backslashes are text. */
Test(cli_generate, escapes_with_e_as_llama_cli) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char esc[4096], plain[4096], raw[4096], off[4096], err[4096];
    char *a[] = {(char *)test_infer_bin(), model, "--tokenize", "--no-bos", "-e", "-p", "x\\x41\\n\\t\\q", NULL};
    cr_assert_eq(test_run(a, NULL, esc, sizeof esc, err, sizeof err), 0, "%s", err);
    char *b[] = {(char *)test_infer_bin(), model, "--tokenize", "--no-bos", "-p", "xA\n\t\\q", NULL};
    cr_assert_eq(test_run(b, NULL, plain, sizeof plain, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(esc, plain);
    char *c[] = {(char *)test_infer_bin(), model, "--tokenize", "--no-bos", "-p", "x\\x41\\n\\t\\q", NULL};
    cr_assert_eq(test_run(c, NULL, raw, sizeof raw, err, sizeof err), 0, "%s", err);
    cr_assert_str_neq(raw, plain, "without -e the backslashes are text");
    char *d[] = {(char *)test_infer_bin(), model, "--tokenize", "--no-bos", "-e", "--no-escape", "-p",
                 "x\\x41\\n\\t\\q", NULL};
    cr_assert_eq(test_run(d, NULL, off, sizeof off, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(off, raw);
}

/* infer MODEL -p "Once upon a time" -n 24 --temp 0, then extra (NULL at
 * its end, at most 14 arguments): its stdout into out; it must exit 0. */
static void greedy_24(const char *model, const char *const *extra, char *out, size_t cap) {
    static char err[65536];
    char *argv[24] = {(char *)test_infer_bin(), (char *)model, "-p", "Once upon a time", "-n", "24", "--temp", "0"};
    int n = 8;
    for (int k = 0; extra && extra[k]; k++) {
        cr_assert_lt(n, 23);
        argv[n++] = (char *)extra[k];
    }
    argv[n] = NULL;
    cr_assert_eq(test_run(argv, NULL, out, cap, err, sizeof err), 0, "%s", err);
}

/* llama-cli's options that infer takes: --ignore-eos (the sampler never
 * picks an end-of-generation token: sampler/ignore_eog_*), -ngl 0 (the
 * CPU), -fa with or without a value, -no-cnv, --no-warmup and
 * --no-display-prompt (infer has no conversation mode, no warm-up and
 * echoes no prompt): the same greedy text. A bad -ngl
 * is a usage error. */
Test(cli_generate, llama_cli_options_taken) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char want[65536], out[65536], err[65536];
    greedy_24(model, NULL, want, sizeof want);
    char *llama[] = {(char *)test_infer_bin(), "-m", model, "-p", "Once upon a time", "-n", "24", "--temp", "0",
                     "-ngl", "0", "-fa", "on", "-no-cnv", "--no-warmup", "--no-display-prompt", "--ignore-eos", "-fa",
                     NULL};
    cr_assert_eq(test_run(llama, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, want);
    cr_assert(strstr(err, "24 runs"), "%s", err);
    char *bad[] = {(char *)test_infer_bin(), model, "-p", "x", "-ngl", "many", NULL};
    cr_assert_eq(test_run(bad, NULL, out, sizeof out, err, sizeof err), 1, "%s", err);
    cr_assert(strstr(err, "-ngl"), "%s", err);
}

/* llama-cli's -C, -Cr, --cpu-strict, --poll, --prio and -tb: the same text;
 * bad values are usage errors, a CPU the machine lacks is refused when
 * the context is made. */
Test(cli_generate, cpu_options_as_llama_cli) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char want[65536], out[65536], err[65536];
    greedy_24(model, NULL, want, sizeof want);
    int first, outside;
    test_own_cpus(&first, &outside);
    char hex[300], range[32];
    test_cpu_hex(first, hex, sizeof hex);
    snprintf(range, sizeof range, "%d-", first);
    const char *placed[] = {"-t", "3", "-C", hex, "--cpu-strict", "1", "--poll", "0", "--prio", "0", NULL};
    greedy_24(model, placed, out, sizeof out);
    cr_assert_str_eq(out, want);
    const char *ranged[] = {"--cpu-range", range, "--poll", "100", "-t", "1", "-tb", "3", NULL};
    greedy_24(model, ranged, out, sizeof out);
    cr_assert_str_eq(out, want);
    static const char *const BAD[][2] = {{"-C", "0xz"}, {"-Cr", "5"}, {"--cpu-strict", "2"}, {"--poll", "101"},
                                         {"--prio", "4"}, {"--prio", "-2"}, {"-tb", "-1"}, {"-tb", "257"}};
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        char *bad[] = {(char *)test_infer_bin(), model, "-p", "x", (char *)BAD[i][0], (char *)BAD[i][1], NULL};
        cr_assert_eq(test_run(bad, NULL, out, sizeof out, err, sizeof err), 1, "%s %s: %s", BAD[i][0], BAD[i][1], err);
        cr_expect(strstr(err, BAD[i][0]), "%s", err);
    }
    if (outside >= 0) {
        snprintf(range, sizeof range, "%d-%d", outside, outside);
        char *refused[] = {(char *)test_infer_bin(), model, "-p", "x", "-Cr", range, NULL};
        cr_assert_neq(test_run(refused, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
        char cpu[32];
        snprintf(cpu, sizeof cpu, "CPU %d", outside);
        cr_expect(strstr(err, cpu), "%s", err);
    }
}

Test(cli_generate, exit_statuses) {
    static char out[65536], err[65536];
    char *usage[] = {(char *)test_infer_bin(), "--no-such-flag", NULL};
    cr_assert_eq(test_run(usage, NULL, out, sizeof out, err, sizeof err), 1);
    char *bad_n[] = {(char *)test_infer_bin(), "m.gguf", "-p", "x", "-n", "many", NULL};
    cr_assert_eq(test_run(bad_n, NULL, out, sizeof out, err, sizeof err), 1);
    char *inf_pen[] = {(char *)test_infer_bin(), "m.gguf", "-p", "x", "--repeat-penalty", "inf", NULL};
    cr_assert_eq(test_run(inf_pen, NULL, out, sizeof out, err, sizeof err), 1, "%s", err);
    char *ppl_p[] = {(char *)test_infer_bin(), "m.gguf", "--perplexity", "t.txt", "-p", "x", NULL};
    cr_assert_eq(test_run(ppl_p, NULL, out, sizeof out, err, sizeof err), 1, "%s", err);
    char *missing[] = {(char *)test_infer_bin(), "/nonexistent/model.gguf", "-p", "x", NULL};
    cr_assert_eq(test_run(missing, NULL, out, sizeof out, err, sizeof err), 2);
    cr_assert_str_empty(out);
    cr_assert(strncmp(err, "infer: /nonexistent/model.gguf: ", 32) == 0, "%s", err);
    char vocab[512];
    if (shared_path(vocab, sizeof vocab, "vocab/ggml-vocab-gpt-2.gguf")) {
        /* A vocabulary-only file cannot generate: rejected, status 2. */
        char *novocab[] = {(char *)test_infer_bin(), vocab, "-p", "hi", NULL};
        cr_assert_eq(test_run(novocab, NULL, out, sizeof out, err, sizeof err), 2, "%s", err);
    }
}

Test(cli_generate, full_context_stops_with_a_message) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char out[65536], err[65536];
    char *argv[] = {(char *)test_infer_bin(), model, "-p", "Once upon a time", "-c", "32", "-n", "100", "--temp", "0", NULL};
    cr_assert_eq(test_run(argv, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "context full") != NULL, "%s", err);
    char *shift[] = {(char *)test_infer_bin(), model, "-p", "Once upon a time", "-c", "32", "-n", "100", "--temp", "0",
                     "--context-shift", NULL};
    cr_assert_eq(test_run(shift, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "context full") == NULL, "%s", err);
    cr_assert(strstr(err, "100 runs") != NULL, "all 100 tokens generated: %s", err);
}

/* --perplexity on a synthetic model (always built): a context of 2 scores
 * no position and is refused with a message (it printed PPL = -nan and
 * exited 0); a context of 8 prints a finite estimate. A read error names
 * the path escaped. */
Test(cli_generate, perplexity_context_too_small_refused) {
    char model[] = "/tmp/infer-ppl-XXXXXX", text[] = "/tmp/infer-ppl-text-XXXXXX";
    int fd = mkstemp(model);
    cr_assert_geq(fd, 0);
    close(fd);
    synth_params p = synth_default_params();
    infer_error e = {0};
    cr_assert_eq(synth_model_file(&p, model, &e), INFER_OK, "%s", e.message);
    fd = mkstemp(text);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 40; i++) cr_assert_eq(write(fd, "one two three four ", 19), 19);
    close(fd);
    static char out[65536], err[65536];
    char *two[] = {(char *)test_infer_bin(), model, "--perplexity", text, "-c", "2", NULL};
    cr_assert_eq(test_run(two, NULL, out, sizeof out, err, sizeof err), 1, "%s%s", out, err);
    cr_assert(strstr(err, "at least 3"), "%s", err);
    cr_assert(!strstr(out, "nan"), "%s", out);
    char *eight[] = {(char *)test_infer_bin(), model, "--perplexity", text, "-c", "8", NULL};
    cr_assert_eq(test_run(eight, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
    const char *fin = strstr(out, "Final estimate: PPL = ");
    cr_assert_not_null(fin, "%s", out);
    const double ppl = atof(fin + 22);
    cr_assert(isfinite(ppl) && ppl >= 1.0, "%s", out);
    char *missing[] = {(char *)test_infer_bin(), model, "--perplexity", "/nonexistent/\x1b[2J", NULL};
    cr_assert_neq(test_run(missing, NULL, out, sizeof out, err, sizeof err), 0);
    cr_assert(strstr(err, "/nonexistent/\\x1b[2J"), "%s", err);
    unlink(model);
    unlink(text);
}

/* --perplexity on the shared story with stories260K (-c 128) lands within
 * 0.5% of llama.cpp's 4.3614, and each chunk's running figure within 0.5%
 * of the [i] values of its output. */
Test(cli_generate, perplexity_matches_llama_cpp) {
    char model[512], text[512], ref[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    SHARED_OR_SKIP(text, "reference/ppl/story.txt");
    SHARED_OR_SKIP(ref, "reference/ppl/stories260K.c128.txt");
    static char out[65536], err[65536];
    char *argv[] = {(char *)test_infer_bin(), model, "--perplexity", text, "-c", "128", NULL};
    cr_assert_eq(test_run(argv, NULL, out, sizeof out, err, sizeof err), 0, "%s", err);
    const char *fin = strstr(out, "Final estimate: PPL = ");
    cr_assert_not_null(fin, "%s", out);
    const double ppl = atof(fin + 22);
    cr_assert(fabs(ppl - 4.3614) / 4.3614 <= 0.005, "PPL %.4f, llama.cpp 4.3614", ppl);
    size_t n;
    char *want = read_file(ref, &n);
    cr_assert_not_null(want);
    int chunks = 0;
    for (int i = 1; i <= 12; i++) {
        char key[16];
        snprintf(key, sizeof key, "[%d]", i);
        const char *a = strstr(out, key), *b = strstr(want, key);
        cr_assert(a && b, "chunk %d missing: %s", i, out);
        const double x = atof(a + strlen(key)), y = atof(b + strlen(key));
        cr_assert(fabs(x - y) / y <= 0.005, "chunk %d: %.4f against llama.cpp's %.4f", i, x, y);
        chunks++;
    }
    cr_assert_eq(chunks, 12);
    free(want);
}
