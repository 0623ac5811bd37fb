/* test_cli_inspect.c - `infer --inspect` as a user runs it.
 *
 * Runs the CLI binary named by $INFER_BIN (set by `make test`; the tests
 * skip without it) with fork/exec, capturing stdout, stderr and the exit
 * status. A good file lists its metadata and tensors (text and JSON); a
 * hostile one exits 2 with exactly one line on stderr, "infer: PATH: why",
 * and nothing on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"

typedef struct {
    char *out, *err;
    size_t out_len, err_len;
    int status; /* exit code, or 128 + signal */
} run_result;

static void append(char **buf, size_t *len, const char *src, size_t n) {
    *buf = realloc(*buf, *len + n + 1);
    cr_assert(*buf);
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Run argv (argv[0] is ignored: $INFER_BIN runs) and collect both streams. */
static run_result run_cli(const char *const *args) {
    const char *bin = getenv("INFER_BIN");
    if (!bin || !*bin) cr_skip_test("INFER_BIN is not set (run through `make test`)");
    char *argv[16];
    size_t n = 0;
    argv[n++] = (char *)bin;
    for (size_t i = 0; args[i] && n < 15; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;

    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        execv(bin, argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    run_result r = {0};
    r.out = calloc(1, 1);
    r.err = calloc(1, 1);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            cr_assert_eq(errno, EINTR);
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char chunk[65536];
            ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
            if (got > 0) {
                if (i == 0) append(&r.out, &r.out_len, chunk, (size_t)got);
                else append(&r.err, &r.err_len, chunk, (size_t)got);
            } else if (got == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) cr_assert_eq(errno, EINTR);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    cr_assert_neq(r.status, 127, "could not exec %s", bin);
    return r;
}

static void free_result(run_result *r) {
    free(r->out);
    free(r->err);
}

/* The number of rows in the text tensor table: the lines after the
 * "tensors: N" line and its column header, up to the blank line. */
static size_t text_tensor_rows(const char *out) {
    const char *p = strstr(out, "\ntensors: ");
    cr_assert_not_null(p, "no tensor table");
    p = strchr(p + 1, '\n'); /* end of "tensors: N" */
    cr_assert_not_null(p);
    p = strchr(p + 1, '\n'); /* end of the column header */
    cr_assert_not_null(p);
    size_t rows = 0;
    for (p++; *p && *p != '\n'; rows++) {
        const char *e = strchr(p, '\n');
        if (!e) break;
        p = e + 1;
    }
    return rows;
}

Test(cli_inspect, text_lists_stories260k) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    run_result r = run_cli((const char *[]){"--inspect", path, NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_eq(r.err_len, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "version 3"), "%s", r.out);
    cr_assert(strstr(r.out, "metadata: 19 entries"));
    cr_assert(strstr(r.out, "tensors: 48"));
    cr_assert_eq(text_tensor_rows(r.out), 48);
    cr_assert(strstr(r.out, "blk.4.ffn_down.weight"));
    const char *bc = strstr(r.out, "llama.block_count");
    cr_assert_not_null(bc);
    const char *eol = strchr(bc, '\n');
    cr_assert(eol && eol[-1] == '5', "block_count line lacks its value 5");
    cr_assert(strstr(r.out, "\"llama\""));
    free_result(&r);
}

Test(cli_inspect, json_lists_48_tensors) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    run_result r = run_cli((const char *[]){"--inspect", "--json", path, NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_eq(r.err_len, 0, "stderr: %s", r.err);
    cr_assert(r.out[0] == '{', "not a JSON object");
    const char *tensors = strstr(r.out, "\"tensors\"");
    cr_assert_not_null(tensors);
    const char *end = strstr(tensors, "\"totals\"");
    cr_assert_not_null(end, "no totals after the tensors");
    size_t len = (size_t)(end - tensors);
    char *section = malloc(len + 1);
    memcpy(section, tensors, len);
    section[len] = '\0';
    cr_assert_eq(test_count(section, "\"name\""), 48);
    cr_assert(strstr(section, "\"blk.4.ffn_down.weight\""));
    free(section);
    cr_assert(strstr(r.out, "\"version\": 3"));
    cr_assert(strstr(r.out, "\"llama.block_count\""));
    cr_assert_eq(test_count(r.out, "\"key\""), 19);
    cr_assert_eq(test_count(r.out, "{"), test_count(r.out, "}"), "unbalanced braces");
    cr_assert_eq(test_count(r.out, "["), test_count(r.out, "]"), "unbalanced brackets");
    free_result(&r);
}

Test(cli_inspect, no_mmap_gives_the_same_output) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/stories260K.gguf");
    run_result a = run_cli((const char *[]){"--inspect", "--json", path, NULL});
    run_result b = run_cli((const char *[]){"--inspect", "--json", "--no-mmap", path, NULL});
    cr_assert_eq(a.status, 0);
    cr_assert_eq(b.status, 0);
    cr_assert_str_eq(a.out, b.out);
    free_result(&a);
    free_result(&b);
}

Test(cli_inspect, q8_0_blocks_across_rows_rejected) {
    char path[1024];
    SHARED_OR_SKIP(path, "models/tinyllamas-stories-260k-q8_0.gguf");
    run_result r = run_cli((const char *[]){"--inspect", path, NULL});
    cr_assert_eq(r.status, 2, "exit %d", r.status);
    cr_assert_eq(r.out_len, 0, "stdout: %s", r.out);
    cr_assert(strncmp(r.err, "infer: ", 7) == 0, "%s", r.err);
    cr_assert(strstr(r.err, "blk.0.ffn_down.weight"), "%s", r.err);
    cr_assert_eq(test_count(r.err, "\n"), 1);
    free_result(&r);
}

/* ---- hostile files ------------------------------------------------------------ */

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void expect_rejected(const char *path, const char *needle) {
    for (int m = 0; m < 2; m++) {
        run_result r = m ? run_cli((const char *[]){"--inspect", "--no-mmap", path, NULL})
                         : run_cli((const char *[]){"--inspect", "--json", path, NULL});
        cr_assert_eq(r.status, 2, "%s: exit %d, stderr: %s", path, r.status, r.err);
        cr_assert_eq(r.out_len, 0, "%s: stdout not empty: %s", path, r.out);
        cr_assert(strncmp(r.err, "infer: ", 7) == 0, "%s: stderr: %s", path, r.err);
        cr_assert(r.err_len > 8 && r.err[r.err_len - 1] == '\n', "%s: stderr: %s", path, r.err);
        cr_assert_eq(test_count(r.err, "\n"), 1, "%s: more than one line: %s", path, r.err);
        for (size_t i = 0; i + 1 < r.err_len; i++) {
            unsigned char c = (unsigned char)r.err[i];
            cr_assert(c >= 0x20 && c < 0x7f, "raw byte 0x%02x on stderr: %s", c, r.err);
        }
        if (needle) cr_assert(strstr(r.err, needle), "%s: lacks \"%s\": %s", path, needle, r.err);
        free_result(&r);
    }
}

/* A minimal v3 header: magic, version, n_tensors, n_kv. */
static size_t header(uint8_t *b, uint32_t version, uint64_t nt, uint64_t nkv) {
    memcpy(b, "GGUF", 4);
    memcpy(b + 4, &version, 4);
    memcpy(b + 8, &nt, 8);
    memcpy(b + 16, &nkv, 8);
    return 24;
}

Test(cli_inspect, hostile_files_exit_2_with_one_line) {
    char dir[] = "/tmp/infer-cli-XXXXXX";
    char path[256];
    uint8_t b[256];
    if (!getenv("INFER_BIN")) cr_skip_test("INFER_BIN is not set (run through `make test`)");
    cr_assert_not_null(mkdtemp(dir));

    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    write_bytes(path, "", 0);
    expect_rejected(path, "empty");
    unlink(path);

    snprintf(path, sizeof path, "%s/magic.gguf", dir);
    memset(b, 0, sizeof b);
    memcpy(b, "\x1b[31m", 4);
    write_bytes(path, b, 64);
    expect_rejected(path, "bad magic '\\x1b[31'");
    unlink(path);

    snprintf(path, sizeof path, "%s/version.gguf", dir);
    size_t n = header(b, 4, 0, 0);
    write_bytes(path, b, n);
    expect_rejected(path, "version 4");
    unlink(path);

    snprintf(path, sizeof path, "%s/count.gguf", dir);
    n = header(b, 3, UINT64_MAX, 0);
    write_bytes(path, b, n + 40);
    expect_rejected(path, "tensor count");
    unlink(path);

    snprintf(path, sizeof path, "%s/truncated.gguf", dir);
    n = header(b, 3, 0, 1);
    uint64_t len = 12;
    memcpy(b + n, &len, 8);
    memcpy(b + n + 8, "general.name", 12);
    write_bytes(path, b, n + 8 + 12 + 1); /* value type cut after one byte */
    expect_rejected(path, "general.name");
    unlink(path);

    /* A tensor whose data lies past the end of the file. */
    snprintf(path, sizeof path, "%s/past-end.gguf", dir);
    n = header(b, 3, 1, 0);
    uint64_t name_len = 1, ne = 8, off = 4096;
    uint32_t nd = 1, type = 0;
    memcpy(b + n, &name_len, 8), n += 8;
    b[n++] = 'w';
    memcpy(b + n, &nd, 4), n += 4;
    memcpy(b + n, &ne, 8), n += 8;
    memcpy(b + n, &type, 4), n += 4;
    memcpy(b + n, &off, 8), n += 8;
    write_bytes(path, b, 96);
    expect_rejected(path, "tensor 'w'");
    unlink(path);

    /* A path with a control byte is escaped in the message too. */
    snprintf(path, sizeof path, "%s/bad\x01name.gguf", dir);
    write_bytes(path, "GG", 2);
    expect_rejected(path, "bad\\x01name");
    unlink(path);

    snprintf(path, sizeof path, "%s/does-not-exist.gguf", dir);
    expect_rejected(path, "does-not-exist");
    cr_assert_eq(rmdir(dir), 0);
}

Test(cli_inspect, usage_errors_exit_1) {
    run_result r = run_cli((const char *[]){"--inspect", NULL});
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    cr_assert_eq(r.out_len, 0);
    cr_assert(r.err_len > 0);
    free_result(&r);
    r = run_cli((const char *[]){"--no-such-option", "x.gguf", "--inspect", NULL});
    cr_assert_eq(r.status, 1, "exit %d", r.status);
    free_result(&r);
}

/* Every byte of out[0..n) is well-formed UTF-8 (util.c's strict reading). */
static int all_utf8(const char *out, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_valid_len((const unsigned char *)out, n, i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

/* A good file whose strings hold bytes that only look like UTF-8 (an
 * overlong NUL, a surrogate, code points past U+10FFFF, a lone
 * continuation byte) beside real UTF-8, under a path with an escape
 * sequence and a Latin-1 byte: the JSON stays valid UTF-8, with the real
 * characters as they are and the rest as \u00XX; text mode escapes the
 * path and names (no raw control byte on stdout). */
Test(cli_inspect, hostile_bytes_in_a_good_file_stay_escaped) {
    char dir[] = "/tmp/infer-cli-XXXXXX", path[256];
    if (!getenv("INFER_BIN")) cr_skip_test("INFER_BIN is not set (run through `make test`)");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m\x1b[2J\xff.gguf", dir);
    infer_gguf_writer *w = NULL;
    infer_error e = {0};
    cr_assert_eq(infer_gguf_writer_new(&w, &e), INFER_OK);
    static const char bad[] = "\xc0\x80|\xed\xa0\x80|\xf4\x90\x80\x80|\xf7\xbf\xbf\xbf|\x80|\xe0\x80\x80";
    static const char good[] = "caf\xc3\xa9 \xf0\x9d\x84\x9e \xe2\x82\xac";
    infer_gguf_writer_set_str(w, "a.bad", bad, sizeof bad - 1);
    infer_gguf_writer_set_str(w, "a.good", good, sizeof good - 1);
    infer_gguf_writer_set_u32(w, "k\xc0\x80\x1b", 7);
    float data[32] = {0};
    uint64_t ne[4] = {32, 1, 1, 1};
    infer_gguf_writer_add_tensor(w, "t\xed\xbf\xbf", INFER_TYPE_F32, 1, ne, data, sizeof data);
    cr_assert_eq(infer_gguf_writer_write_file(w, path, &e), INFER_OK, "%s", e.message);
    infer_gguf_writer_free(w);

    run_result j = run_cli((const char *[]){"--inspect", "--json", path, NULL});
    cr_assert_eq(j.status, 0, "exit %d: %s", j.status, j.err);
    cr_assert(all_utf8(j.out, j.out_len), "not UTF-8: %s", j.out);
    cr_assert(strstr(j.out, "\"\\u00c0\\u0080|\\u00ed\\u00a0\\u0080|\\u00f4\\u0090\\u0080\\u0080|"
                            "\\u00f7\\u00bf\\u00bf\\u00bf|\\u0080|\\u00e0\\u0080\\u0080\""), "%s", j.out);
    cr_assert(strstr(j.out, "\"caf\xc3\xa9 \xf0\x9d\x84\x9e \xe2\x82\xac\""), "%s", j.out);
    cr_assert(strstr(j.out, "\"k\\u00c0\\u0080\\u001b\""), "%s", j.out);
    cr_assert(strstr(j.out, "\"t\\u00ed\\u00bf\\u00bf\""), "%s", j.out);
    cr_assert(strstr(j.out, "m\\u001b[2J\\u00ff.gguf"), "%s", j.out);
    free_result(&j);

    run_result t = run_cli((const char *[]){"--inspect", path, NULL});
    cr_assert_eq(t.status, 0, "exit %d: %s", t.status, t.err);
    for (size_t i = 0; i < t.out_len; i++) {
        unsigned char c = (unsigned char)t.out[i];
        cr_assert(c == '\n' || (c >= 0x20 && c < 0x7f), "raw byte 0x%02x at %zu: %s", c, i, t.out);
    }
    cr_assert(strstr(t.out, "m\\x1b[2J\\xff.gguf"), "%s", t.out);
    free_result(&t);
    unlink(path);
    cr_assert_eq(rmdir(dir), 0);
}
