/*
 * test_bench_cli.c - `infer-bench` as a user runs it, on small models made
 * by the project's own writer (always available): llama-bench's options
 * (-m repeatable, -p, -n, -pg, -d, -r, -t, -b, -ub, -ctk/-ctv, -mmp lists, -o
 * md|csv|json|jsonl|sql, -oe, --progress, --delay, --no-warmup), one row per
 * model x threads x test with its columns, a build line, the probe lines
 * on stderr, JSON with every repetition's sample, CSV, JSON and SQL that
 * quote a hostile path (the SQL run through SQLite where Python has it), --kernels' two tables per dispatch level, the default -t
 * under a one-CPU mask, and exit statuses for bad options and unreadable
 * models. The binary sits beside $INFER_BIN.
 */
#include <time.h>

#include "dispatch.h"
#include "synth.h"
#include "testutil.h"

static char out[65536], err[65536];

/* argv run with its stdout and stderr in out and err; its exit status. */
static int bench_run(char *const argv[]) { return test_run(argv, NULL, out, sizeof out, err, sizeof err); }

/* infer-bench (beside $INFER_BIN) into buf; it must be there. */
static char *bench_bin(char *buf, size_t cap) {
    test_tool_bin(buf, cap, "infer-bench");
    cr_assert_eq(access(buf, X_OK), 0, "no %s", buf);
    return buf;
}

/* infer-bench with argv, then the model at path removed (this was its
 * last use); the run must succeed. */
static void bench_last_run(char *const argv[], const char *path) {
    const int rc = bench_run(argv);
    unlink(path);
    cr_assert_eq(rc, 0, "stderr: %s", err);
}

/* Cell i of markdown row row is want. */
static void cell_is(const char *row, int i, const char *want) {
    char c[128];
    test_md_cell(row, i, c, sizeof c);
    cr_assert_str_eq(c, want, "cell %d of %s", i, row);
}

/* A small synthetic model of type t at path (a mkstemp template); rows of
 * 256 values when big is set (whole K-quant blocks), else 64. */
static void make_model_sized(char *path, uint32_t t, uint64_t seed, int big) {
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    synth_params p = synth_default_params();
    p.n_embd = big ? 256 : 64;
    p.n_ff = big ? 512 : 128;
    p.wtype = t;
    p.seed = seed;
    infer_error e;
    cr_assert_eq(synth_model_file(&p, path, &e), INFER_OK, "%s", e.message);
}

static void make_model(char *path, uint32_t t, uint64_t seed) { make_model_sized(path, t, seed, 0); }

Test(bench_cli, markdown_rows_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-a-XXXXXX", b[] = "/tmp/infer-bench-b-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_F32, 1);
    make_model(b, INFER_TYPE_Q8_0, 2);
    char *argv[] = {bin, "-m", a, "-m", b, "-p", "8", "-n", "4", "-r", "2", "-t", "2", NULL};
    const int rc = bench_run(argv);
    unlink(a), unlink(b);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    char row[1024], c[128];
    /* header: llama-bench's columns first, in its order */
    cr_assert(test_md_row(out, 0, row, sizeof row));
    static const char *const COLS[] = {"model", "size", "params", "backend", "threads", "test", "t/s",
                                       "GB/s", "% bw", "ttft ms", "load ms", "rss MiB"};
    for (int i = 0; i < 12; i++) {
        cell_is(row, i, COLS[i]);
    }
    /* separator, then model x test: pp8 and tg4 for each model */
    static const char *const TESTS[] = {"pp8", "tg4", "pp8", "tg4"};
    for (int k = 0; k < 4; k++) {
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        test_md_cell(row, 0, c, sizeof c);
        cr_assert(strstr(c, k < 2 ? "F32" : "Q8_0"), "row %d model %s", k, c);
        cell_is(row, 3, "CPU");
        cell_is(row, 4, "2");
        cell_is(row, 5, TESTS[k]);
        test_md_cell(row, 6, c, sizeof c);
        double mean = 0, sd = -1;
        cr_assert_eq(sscanf(c, "%lf ± %lf", &mean, &sd), 2, "t/s cell %s", c);
        cr_assert(mean > 0 && sd >= 0, "t/s %s", c);
        /* tg: GB/s and % of the probe; pp: time to first token. The values
         * depend on the machine's load: a tg4 of this tiny model that was
         * descheduled (the suite runs two jobs at once) prints 0.0 % of a
         * 25 GB/s probe, so the share must be positive only when the run
         * streamed 0.5 GB/s or more (0.5 / 1000 GB/s still prints 0.1). */
        test_md_cell(row, 7, c, sizeof c);
        cr_assert_eq(c[0] != '\0', k % 2 == 1, "GB/s cell '%s' in %s", c, TESTS[k]);
        const double gbs = atof(c);
        cr_assert(gbs >= 0, "GB/s %s", c);
        test_md_cell(row, 8, c, sizeof c);
        cr_assert_eq(c[0] != '\0', k % 2 == 1, "%% bw cell '%s' in %s", c, TESTS[k]);
        if (k % 2) cr_assert(atof(c) >= 0 && (gbs < 0.5 || atof(c) > 0), "%% bw %s at %.2f GB/s", c, gbs);
        test_md_cell(row, 9, c, sizeof c);
        cr_assert_eq(c[0] != '\0', k % 2 == 0, "ttft cell '%s' in %s", c, TESTS[k]);
        test_md_cell(row, 11, c, sizeof c);
        cr_assert(atof(c) > 0, "rss %s", c);
    }
    cr_assert_not(test_md_row(out, 6, row, sizeof row), "one row per model and test: %s", out);
    cr_assert(strstr(out, "\nbuild: "), "a build line ends the table: %s", out);
    const char *probe = strstr(err, "read bandwidth probe: ");
    cr_assert(probe, "%s", err);
    /* The probe runs in a child program (infer-bench --probe-child): 0.00 if it could not. */
    cr_assert_gt(atof(probe + strlen("read bandwidth probe: ")), 0.0, "%s", err);
    cr_assert_eq(test_count(err, "probe before each repetition"), 2, "one paired-probe line per tg test: %s", err);
    LEAK_CHECK();
}

Test(bench_cli, json_with_every_sample) {
    char bin[600], a[] = "/tmp/infer-bench-j-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q4_0, 3);
    char *argv[] = {bin, "-m", a, "-p", "8", "-n", "0", "-r", "3", "-t", "1,2", "-o", "json", NULL};
    bench_last_run(argv, a);
    cr_assert_eq(out[0], '[', "%s", out);
    cr_assert(strstr(out, "\n]\n"), "%s", out);
    cr_assert_eq(test_count(out, "{"), 2, "one object per thread count: %s", out);
    cr_assert_eq(test_count(out, "{"), test_count(out, "}"));
    cr_assert(strstr(out, "\"n_threads\": 1,") && strstr(out, "\"n_threads\": 2,"), "%s", out);
    cr_assert_eq(test_count(out, "\"n_prompt\": 8,"), 2);
    cr_assert_eq(test_count(out, "\"build_commit\": "), 2);
    /* three samples each: two commas inside each samples list */
    for (const char *p = strstr(out, "\"samples_ts\": ["); p; p = strstr(p + 1, "\"samples_ts\": [")) {
        const char *e = strchr(p, ']');
        cr_assert(e);
        int commas = 0;
        for (const char *q = p; q < e; q++) commas += *q == ',';
        cr_assert_eq(commas, 2, "3 repetitions: %.*s", (int)(e - p), p);
    }
    /* llama-bench's fields too: the CPU, the GPUs (a string, maybe empty),
     * when the test ran, and each repetition's ns, which give its t/s */
    cr_assert_eq(test_count(out, "\"cpu_info\": \""), 2, "%s", out);
    cr_assert_eq(test_count(out, "\"gpu_info\": \""), 2, "%s", out);
    for (const char *p = strstr(out, "\"test_time\": \""); p; p = strstr(p + 1, "\"test_time\": \"")) {
        int y, mo, d, h, mi, sec;
        char z = 0;
        cr_assert_eq(sscanf(p + 14, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z), 7, "%.40s", p);
        cr_assert(y >= 2024 && z == 'Z', "%.40s", p);
    }
    const char *ts = strstr(out, "\"samples_ts\": ["), *ns = strstr(out, "\"samples_ns\": [");
    const char *avg = strstr(out, "\"avg_ns\": ");
    cr_assert(ts && ns && avg, "%s", out);
    cr_assert_gt(atof(avg + 10), 0);
    ts += 15;
    ns += 15;
    for (int k = 0; k < 3; k++) {
        char *e1, *e2;
        const double t = strtod(ts, &e1), n = strtod(ns, &e2);
        cr_assert(t > 0 && n > 0, "sample %d: %.30s / %.30s", k, ts, ns);
        cr_assert_float_eq(t, 8 * 1e9 / n, 1e-3 * t, "sample %d: %f t/s against %f ns", k, t, n);
        ts = e1 + 2;
        ns = e2 + 2;
    }
    LEAK_CHECK();
}

/* -pg PP,TG (repeatable): after the pp and tg tests, one row per pair named
 * "pp8+tg4" as llama-bench names it, its t/s the prompt and generated
 * tokens over the whole time, its time to first token the prompt's; no
 * GB/s (the weights are read once for the prompt and once per token). */
Test(bench_cli, prompt_then_generation_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-g-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q4_0, 7);
    char *argv[] = {bin, "-m", a, "-p", "8", "-n", "4", "-pg", "8,4", "-pg", "6,2", "-r", "2", "--no-warmup", NULL};
    int rc = bench_run(argv);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    static const char *const TESTS[] = {"pp8", "tg4", "pp8+tg4", "pp6+tg2"};
    char row[1024], c[128];
    for (int k = 0; k < 4; k++) {
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        cell_is(row, 5, TESTS[k]);
        test_md_cell(row, 6, c, sizeof c);
        cr_assert(atof(c) > 0, "t/s %s", c);
        test_md_cell(row, 7, c, sizeof c);
        cr_assert_eq(c[0] != '\0', k == 1, "GB/s for tg alone: '%s' in %s", c, TESTS[k]);
        test_md_cell(row, 9, c, sizeof c);
        cr_assert_eq(c[0] != '\0', k != 1, "ttft for every test with a prompt: '%s' in %s", c, TESTS[k]);
    }
    cr_assert_not(test_md_row(out, 6, row, sizeof row), "one row per test: %s", out);
    cr_assert_eq(test_count(err, "probe before each repetition"), 1, "the paired probe for tg alone: %s", err);
    char *json[] = {bin, "-m", a, "-p", "0", "-n", "0", "-pg", "5,3", "-r", "1", "-o", "json", NULL};
    bench_last_run(json, a);
    cr_assert_eq(test_count(out, "\"n_prompt\": 5, \"n_gen\": 3,"), 1, "%s", out);
    cr_assert_eq(test_count(out, "{"), 1, "-p 0 -n 0 leaves the pg test alone: %s", out);
    LEAK_CHECK();
}

/* Field i (from 0) of a CSV line into buf: quoted fields unquoted, their
 * doubled quotes single; 0 when the line has fewer fields. */
static int csv_field(const char *line, int i, char *buf, size_t cap) {
    const char *p = line;
    for (int f = 0;; f++) {
        size_t n = 0;
        if (*p == '"') {
            for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
                if (*p == '"') p++;
                if (f == i && n + 1 < cap) buf[n++] = *p;
            }
            if (*p == '"') p++;
        } else {
            for (; *p && *p != ',' && *p != '\n'; p++)
                if (f == i && n + 1 < cap) buf[n++] = *p;
        }
        if (f == i) {
            buf[n] = '\0';
            return 1;
        }
        if (*p != ',') return 0;
        p++;
    }
}

/* -o csv: a header of llama-bench-style field names, then one line per
 * test; -o jsonl: one object per line, no array. A model path with a quote,
 * a comma, a backslash and a byte that is not UTF-8 comes back whole from
 * CSV and escaped in JSON (\u00ff: JSON must be UTF-8). */
Test(bench_cli, csv_and_jsonl) {
    char bin[600], a[] = "/tmp/infer-bench \"q\",\\\xff-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q8_0, 8);
    char *csv[] = {bin, "-m", a, "-p", "8", "-n", "4", "-r", "3", "-o", "csv", NULL};
    int rc = bench_run(csv);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    static const char *const NAMES[] = {"model_filename", "model_type", "n_prompt", "n_gen", "avg_ts", "samples_ts",
                                        "build_commit"};
    static const int AT[] = {0, 1, 12, 13, 15, 24, 25};
    char f[512];
    for (size_t i = 0; i < sizeof AT / sizeof AT[0]; i++) {
        cr_assert(csv_field(out, AT[i], f, sizeof f), "header: %s", out);
        cr_assert_str_eq(f, NAMES[i], "header field %d", AT[i]);
    }
    cr_assert(csv_field(out, 32, f, sizeof f) && !strcmp(f, "samples_ns"), "%s", out);
    cr_assert(csv_field(out, 33, f, sizeof f) && !strcmp(f, "cpu_mask"), "%s", out);
    cr_assert(csv_field(out, 35, f, sizeof f) && !strcmp(f, "poll"), "36 fields: %s", out);
    cr_assert_eq(test_count(out, "\n"), 3, "a header and two tests: %s", out);
    const char *l1 = strchr(out, '\n') + 1, *l2 = strchr(l1, '\n') + 1;
    static const char *const PROMPT[] = {"8", "0"}, *const GEN[] = {"0", "4"};
    for (int k = 0; k < 2; k++) {
        const char *line = k ? l2 : l1;
        cr_assert(csv_field(line, 0, f, sizeof f));
        cr_assert_str_eq(f, a, "the path comes back whole");
        cr_assert(csv_field(line, 10, f, sizeof f) && !strcmp(f, "0"), "flash_attn %s", f);
        cr_assert(csv_field(line, 11, f, sizeof f) && !strcmp(f, "1"), "use_mmap %s", f);
        cr_assert(csv_field(line, 12, f, sizeof f) && !strcmp(f, PROMPT[k]), "n_prompt %s", f);
        cr_assert(csv_field(line, 13, f, sizeof f) && !strcmp(f, GEN[k]), "n_gen %s", f);
        cr_assert(csv_field(line, 15, f, sizeof f) && atof(f) > 0, "avg_ts %s", f);
        cr_assert(csv_field(line, 24, f, sizeof f) && test_count(f, ",") == 2, "3 samples: %s", f);
        cr_assert(csv_field(line, 33, f, sizeof f) && !strcmp(f, "0x0"), "cpu_mask %s", f);
        cr_assert(csv_field(line, 35, f, sizeof f) && !strcmp(f, "50") && !csv_field(line, 36, f, sizeof f),
                  "poll 50, 36 fields: %s", line);
    }
    char *jsonl[] = {bin, "-m", a, "-p", "8", "-n", "4", "-r", "1", "-o", "jsonl", NULL};
    bench_last_run(jsonl, a);
    cr_assert_eq(out[0], '{', "%s", out);
    cr_assert_eq(test_count(out, "\n"), 2, "one line per test: %s", out);
    cr_assert_eq(test_count(out, "}\n{"), 1, "%s", out);
    cr_assert_eq(test_count(out, "\"/tmp/infer-bench \\\"q\\\",\\\\\\u00ff-"), 2, "the path escaped: %s", out);
    LEAK_CHECK();
}

/* -o sql: a CREATE TABLE IF NOT EXISTS of the 36 fields, typed, then one
 * INSERT per test with strings quoted (a quote in the path doubled). Where
 * Python's sqlite3 is at hand, SQLite runs it twice into one database and
 * reads back what it stored. */
Test(bench_cli, sql_for_sqlite) {
    char bin[600], a[] = "/tmp/infer-bench 'q'-XXXXXX", sqlf[] = "/tmp/infer-bench-sql-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q8_0, 9);
    char *sql[] = {bin, "-m", a, "-p", "8", "-n", "4", "-r", "2", "-o", "sql", NULL};
    int rc = bench_run(sql);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert(!strncmp(out, "CREATE TABLE IF NOT EXISTS infer_bench (\n  model_filename TEXT,\n", 64), "%s", out);
    cr_assert_eq(test_count(out, " TEXT"), 13, "%s", out);
    cr_assert_eq(test_count(out, " INTEGER"), 14, "%s", out); /* the booleans too, as llama-bench's */
    cr_assert_eq(test_count(out, " REAL"), 9, "%s", out);
    cr_assert_eq(test_count(out, "  cpu_mask TEXT,\n  cpu_strict INTEGER,\n  poll INTEGER\n);\n\n"), 1, "%s", out);
    cr_assert_eq(test_count(out, "INSERT INTO infer_bench (model_filename, model_type, "), 2, "two tests: %s", out);
    char quoted[128];
    snprintf(quoted, sizeof quoted, "VALUES ('/tmp/infer-bench ''q''-%s', ", a + strlen(a) - 6);
    cr_assert_eq(test_count(out, quoted), 2, "the path quoted: %s", out);
    cr_assert_eq(test_count(out, ");\n"), 3, "%s", out);

    const char *py = "/usr/bin/python3";
    if (access(py, X_OK) != 0) {
        cr_log_info("no %s: the SQL was not run through SQLite", py);
        unlink(a);
        return;
    }
    int fd = mkstemp(sqlf);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, out, strlen(out)), (ssize_t)strlen(out));
    close(fd);
    char *run[] = {(char *)py, "-c",
                   "import sqlite3, sys\n"
                   "db = sqlite3.connect(':memory:')\n"
                   "s = open(sys.argv[1]).read()\n"
                   "db.executescript(s)\n"
                   "db.executescript(s)\n"
                   "for r in db.execute('SELECT model_filename, n_prompt, n_gen, typeof(avg_ts), avg_ts > 0, "
                   "typeof(n_threads), samples_ts FROM infer_bench'):\n"
                   "    print('|'.join(map(str, r)))\n",
                   sqlf, NULL};
    rc = bench_run(run);
    unlink(sqlf);
    unlink(a);
    if (rc != 0 && strstr(err, "No module named")) {
        cr_log_info("Python has no sqlite3: the SQL was not run through SQLite");
        return;
    }
    cr_assert_eq(rc, 0, "SQLite took it: %s", err);
    char row[256];
    snprintf(row, sizeof row, "%s|8|0|real|1|integer|[", a);
    cr_assert_eq(test_count(out, row), 2, "the pp row, twice: %s", out);
    snprintf(row, sizeof row, "%s|0|4|real|1|integer|[", a);
    cr_assert_eq(test_count(out, row), 2, "the tg row, twice: %s", out);
    cr_assert_eq(test_count(out, "\n"), 4, "%s", out);
    LEAK_CHECK();
}

/* -b, -ub and -ctk/-ctv as llama-bench's: lists that multiply the rows in
 * its order (-b, -ub, the KV type, threads, the depth, that varying
 * fastest, then the pp and tg tests; checked against llama-bench's rows),
 * each shown in a column after threads when it has more than one value or
 * one other than the default (as there); in JSON always (defaults 2048,
 * 512, f16; the booleans true / false as llama-bench writes them). A
 * prompt longer than -b goes in several decode calls, and a -d fill too.
 * K and V in different types are refused: infer keeps them in one. */
Test(bench_cli, batch_sizes_and_cache_types) {
    char bin[600], a[] = "/tmp/infer-bench-b-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q8_0, 10);
    char *argv[] = {bin, "-m", a, "-p", "12", "-n", "2", "-d", "0,9", "-r", "1", "-b", "5,16", "-ub", "3",
                    "-ctk", "f16,f32", "-ctv", "f16,f32", NULL};
    int rc = bench_run(argv);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    char row[1024], c[128];
    cr_assert(test_md_row(out, 0, row, sizeof row));
    static const char *const HEAD[] = {"threads", "n_batch", "n_ubatch", "type_k", "type_v", "test", "t/s"};
    for (int i = 0; i < 7; i++) {
        cell_is(row, 4 + i, HEAD[i]);
    }
    /* -b 5: (f16: pp12, tg2, pp12 @ d9, tg2 @ d9), (f32: the same); then -b 16 */
    for (int k = 0; k < 16; k++) {
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        cell_is(row, 5, k < 8 ? "5" : "16");
        cell_is(row, 6, "3");
        cell_is(row, 7, k % 8 < 4 ? "f16" : "f32");
        test_md_cell(row, 9, c, sizeof c);
        static const char *const TESTS[] = {"pp12", "tg2", "pp12 @ d9", "tg2 @ d9"};
        cr_assert_str_eq(c, TESTS[k % 4], "%s", row);
        test_md_cell(row, 10, c, sizeof c);
        cr_assert(atof(c) > 0, "t/s in %s", row);
    }
    cr_assert_not(test_md_row(out, 18, row, sizeof row), "16 rows: %s", out);
    char *json[] = {bin, "-m", a, "-p", "4", "-n", "0", "-r", "1", "-o", "json", NULL};
    rc = bench_run(json);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert_eq(test_count(out, "\"n_batch\": 2048, \"n_ubatch\": 512, \"type_k\": \"f16\", \"type_v\": \"f16\", "
                                 "\"flash_attn\": false, \"use_mmap\": true,"),
                 1, "%s", out);
    /* the defaults given are no columns, as in llama-bench */
    char *md[] = {bin, "-m", a, "-p", "4", "-n", "0", "-r", "1", "-b", "2048", "-ub", "512", "-ctk", "f16", "-fa", "0",
                  "-mmp", "1", NULL};
    bench_last_run(md, a);
    cr_assert(!strstr(out, "n_batch") && !strstr(out, "n_ubatch") && !strstr(out, "type_k") && !strstr(out, "mmap") &&
                  !strstr(out, "| fa |"),
              "no option columns for the defaults: %s", out);
    char *differ[] = {bin, "-m", "x.gguf", "-ctk", "f16", "-ctv", "f32", NULL};
    cr_assert_neq(bench_run(differ), 0);
    cr_assert(strstr(err, "one type"), "%s", err);
    char *q8[] = {bin, "-m", "x.gguf", "-ctk", "q8_0", NULL};
    cr_assert_neq(bench_run(q8), 0);
    LEAK_CHECK();
}

/* infer-bench on model with "-p 8 -n 2 -t 1,2 FLAG 0,1" has FLAG's
 * column (named col) after threads, and for each of its values (0, then
 * 1) the two thread counts, each with pp8 then tg2: eight rows, each with
 * a t/s. */
static void expect_rows_by_opt_then_threads(const char *bin, const char *model, const char *flag, const char *col) {
    char *argv[] = {(char *)bin, "-m", (char *)model, "-p", "8", "-n", "2", "-r", "1", "-t", "1,2", (char *)flag, "0,1",
                    NULL};
    cr_assert_eq(bench_run(argv), 0, "stderr: %s", err);
    char row[1024], c[128];
    cr_assert(test_md_row(out, 0, row, sizeof row));
    cell_is(row, 4, "threads");
    cell_is(row, 5, col);
    cell_is(row, 6, "test");
    for (int k = 0; k < 8; k++) {
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        cell_is(row, 4, k % 4 < 2 ? "1" : "2");
        cell_is(row, 5, k < 4 ? "0" : "1");
        cell_is(row, 6, k % 2 ? "tg2" : "pp8");
        test_md_cell(row, 7, c, sizeof c);
        cr_assert(atof(c) > 0, "t/s in %s", row);
    }
    cr_assert_not(test_md_row(out, 10, row, sizeof row), "8 rows: %s", out);
}

/* infer-bench flag v exits 1 naming flag, for each v of bad. */
static void expect_values_refused(const char *bin, const char *flag, const char *const *bad, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *argv[] = {(char *)bin, "-m", "x.gguf", (char *)flag, (char *)bad[i], NULL};
        cr_assert_eq(bench_run(argv), 1, "%s '%s' refused", flag, bad[i]);
        cr_assert(strstr(err, flag), "%s '%s': %s", flag, bad[i], err);
    }
}

/* -mmp as llama-bench's: a list of 0 (read the file) and 1 (map it), each
 * a load of the model, outermost after the model; a column when not the
 * default, use_mmap in JSON always (a boolean). Anything but 0 and 1 is
 * refused. */
Test(bench_cli, mmap_or_read_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-mmp-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q4_0, 11);
    expect_rows_by_opt_then_threads(bin, a, "-mmp", "mmap"); /* mmap 0 (read), then 1 */
    char *json[] = {bin, "-m", a, "-p", "4", "-n", "0", "-r", "1", "-mmp", "0", "-o", "jsonl", NULL};
    bench_last_run(json, a);
    cr_assert_eq(test_count(out, "\"use_mmap\": false,"), 1, "%s", out);
    static const char *const BAD[] = {"2", "-1", "0,2", "0-2", "x", ""};
    expect_values_refused(bin, "-mmp", BAD, sizeof BAD / sizeof BAD[0]);
    LEAK_CHECK();
}

/* -fa as llama-bench's: a list of 0 and 1 that multiplies the rows
 * (outside the threads, inside the KV type: llama-bench's order, checked
 * against its rows), an "fa" column when not just the default, flash_attn
 * in JSON. Both values run infer's one attention (fused, online softmax). */
Test(bench_cli, flash_attn_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-fa-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q4_0, 12);
    expect_rows_by_opt_then_threads(bin, a, "-fa", "fa");
    char *json[] = {bin, "-m", a, "-p", "4", "-n", "0", "-r", "1", "--flash-attn", "1", "-o", "jsonl", NULL};
    bench_last_run(json, a);
    cr_assert_eq(test_count(out, "\"flash_attn\": true, \"use_mmap\": true,"), 1, "%s", out);
    static const char *const BAD[] = {"2", "-1", "0,2", "x", ""};
    expect_values_refused(bin, "-fa", BAD, sizeof BAD / sizeof BAD[0]);
    LEAK_CHECK();
}

/* --prio as llama-bench's: 0..3 accepted (the nice value 0, -5, -10,
 * -20; a warning, not a failure, where the system refuses it), others
 * refused. */
Test(bench_cli, prio_accepted_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-prio-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q8_0, 13);
    char *argv[] = {bin, "-m", a, "-p", "4", "-n", "0", "-r", "1", "--prio", "1", NULL};
    bench_last_run(argv, a);
    if (strstr(err, "cannot set the nice value"))
        cr_log_info("--prio 1 refused here (not privileged): %s", err);
    cr_assert_eq(test_count(out, "\n| llama"), 1, "%s", out);
    static const char *const BAD[] = {"4", "-1", "x", "1,2"};
    expect_values_refused(bin, "--prio", BAD, sizeof BAD / sizeof BAD[0]);
    LEAK_CHECK();
}

/* -C, --cpu-strict and --poll as llama-bench's: lists inside the thread
 * counts in its order (-t, -C, --cpu-strict, -d, --poll the fastest), a
 * column each when not the default, cpu_mask / cpu_strict / poll in the
 * records; bad values refused, a CPU the process may not use refused when
 * the test's context is made. */
Test(bench_cli, cpu_placement_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-cpu-XXXXXX", hex[300];
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q4_0, 14);
    int first, outside;
    test_own_cpus(&first, &outside);
    test_cpu_hex(first, hex, sizeof hex);
    /* prompts only: a generation test would run the probe before each repetition */
    char *argv[] = {bin, "-m", a, "-p", "8", "-n", "0", "-r", "1", "-t", "1,2", "-C", hex, "--cpu-strict", "0,1",
                    "-d", "0,4", "--poll", "0,50", NULL};
    cr_assert_eq(bench_run(argv), 0, "stderr: %s", err);
    char row[1024], c[128];
    cr_assert(test_md_row(out, 0, row, sizeof row));
    static const char *const HEAD[] = {"threads", "cpu_mask", "cpu_strict", "poll", "test"};
    for (int i = 0; i < 5; i++) cell_is(row, 4 + i, HEAD[i]);
    for (int k = 0; k < 16; k++) { /* t x strict x depth x poll */
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        cell_is(row, 4, k < 8 ? "1" : "2");
        cell_is(row, 5, hex);
        cell_is(row, 6, (k / 4) % 2 ? "1" : "0");
        cell_is(row, 7, k % 2 ? "50" : "0");
        cell_is(row, 8, (k / 2) % 2 ? "pp8 @ d4" : "pp8");
        test_md_cell(row, 9, c, sizeof c);
        cr_assert(atof(c) > 0, "t/s in %s", row);
    }
    cr_assert_not(test_md_row(out, 18, row, sizeof row), "16 rows: %s", out);
    char *json[] = {bin, "-m", a, "-p", "0", "-n", "2", "-r", "1", "-C", hex, "--cpu-strict", "1", "--poll", "7",
                    "-o", "jsonl", NULL};
    cr_assert_eq(bench_run(json), 0, "stderr: %s", err);
    cr_assert(strstr(out, "\"probe_gbs_min\": ") && !strstr(out, "\"probe_gbs_min\": 0.00,"),
              "the probe ran on the test's CPU: %s", out);
    char want[400];
    snprintf(want, sizeof want, "\"cpu_mask\": \"%s\", \"cpu_strict\": true, \"poll\": 7}", hex);
    cr_assert_eq(test_count(out, want), 1, "%s", out);
    if (outside >= 0) {
        char far[300], cpu[32];
        test_cpu_hex(outside, far, sizeof far);
        char *refused[] = {bin, "-m", a, "-p", "4", "-n", "0", "-r", "1", "-C", far, NULL};
        cr_assert_eq(bench_run(refused), 3, "stderr: %s", err);
        snprintf(cpu, sizeof cpu, "CPU %d", outside);
        cr_assert(strstr(err, cpu), "%s", err);
    }
    unlink(a);
    static const char *const BAD_C[] =  {"zz", "", ",", "0x-1", "0x1,zz", "1" "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000"};
    expect_values_refused(bin, "-C", BAD_C, sizeof BAD_C / sizeof BAD_C[0]);
    static const char *const BAD_S[] = {"2", "-1", "x", "0,2"};
    expect_values_refused(bin, "--cpu-strict", BAD_S, sizeof BAD_S / sizeof BAD_S[0]);
    static const char *const BAD_P[] = {"101", "-1", "x", "50,101"};
    expect_values_refused(bin, "--poll", BAD_P, sizeof BAD_P / sizeof BAD_P[0]);
    LEAK_CHECK();
}

/* -oe: the results on stderr as well, in their own format (llama-bench's
 * -oe); --progress: a numbered line on stderr as each test starts. */
Test(bench_cli, results_on_stderr_and_progress) {
    char bin[600], a[] = "/tmp/infer-bench-e-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_F32, 11);
    char *argv[] = {bin, "-m", a, "-p", "4", "-n", "2", "-pg", "3,1", "-r", "1", "-oe", "jsonl", "--progress", NULL};
    bench_last_run(argv, a);
    char row[1024];
    cr_assert(test_md_row(out, 4, row, sizeof row) && !test_md_row(out, 5, row, sizeof row), "md on stdout: %s", out);
    cr_assert_eq(test_count(out, "{"), 0, "%s", out);
    cr_assert_eq(test_count(err, "\n{\"model_filename\": "), 3, "a JSONL line per test on stderr: %s", err);
    cr_assert(strstr(err, "\"n_prompt\": 3, \"n_gen\": 1,"), "%s", err);
    static const char *const P[] = {"test 1/3: ", "test 2/3: ", "test 3/3: "}, *const T[] = {", pp4,", ", tg2,", ", pp3+tg1,"};
    for (int k = 0; k < 3; k++) {
        const char *l = strstr(err, P[k]);
        cr_assert(l, "%s missing: %s", P[k], err);
        const char *e = strchr(l, '\n');
        cr_assert(e && strstr(l, T[k]) && strstr(l, T[k]) < e, "%s: %s", T[k], l);
    }
    cr_assert_not(strstr(err, "test 4/"), "%s", err);
    char *bad[] = {bin, "-m", "x.gguf", "-oe", "xml", NULL};
    cr_assert_eq(bench_run(bad), 1, "-oe xml must be refused");
    cr_assert(strstr(err, "-oe takes"), "%s", err);
    LEAK_CHECK();
}

/* Lists as llama-bench takes them: an option given twice adds to its list,
 * and an entry may be a range ("2-8*2": 2, 4, 8; "1-2": 1, 2; "3-7+4": 3,
 * 7). A list past 16 values, a backwards range, a step of 0 or a factor of
 * 1 is refused; so is a list where one number goes (-r 3,4 once wrote
 * past its one-int buffer: the sanitizer run of this test catches that). */
Test(bench_cli, lists_and_ranges_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-l-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_F32, 12);
    char *argv[] = {bin, "-m", a, "-p", "2-8*2", "-p", "3-7+4", "-n", "0", "-t", "1-2", "-r", "1", NULL};
    bench_last_run(argv, a);
    static const char *const T[] = {"1", "2"}, *const P[] = {"pp2", "pp4", "pp8", "pp3", "pp7"};
    char row[1024];
    for (int k = 0; k < 10; k++) {
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        cell_is(row, 4, T[k / 5]);
        cell_is(row, 5, P[k % 5]);
    }
    cr_assert_not(test_md_row(out, 12, row, sizeof row), "ten rows: %s", out);
    static const char *const bad[][2] = {{"-p", "1-17"}, {"-p", "8-4"}, {"-p", "1-8+0"}, {"-p", "1-8*1"},
                                          {"-p", "1-"}, {"-p", "1-4x"}, {"-t", "0-2"}, {"-r", "3,4"},
                                          {"-r", "2-3"}, {"-ngl", "1,2"}, {"--delay", "1,1"}, {"-p", ""},
                                          {"-t", ","}, {"-ctk", ","}, {"-ctv", ""}, {"-t", "300"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv2[] = {bin, "-m", "x.gguf", (char *)bad[i][0], (char *)bad[i][1], NULL};
        cr_assert_eq(bench_run(argv2), 1, "%s %s must be refused: %s",
                     bad[i][0], bad[i][1], err);
        cr_assert(strstr(err, "bad value"), "%s %s: %s", bad[i][0], bad[i][1], err);
    }
    char *many[] = {bin, "-m", "x.gguf", "-p", "1-8", "-p", "9-17", NULL};
    cr_assert_eq(bench_run(many), 1, "17 values in two -p: %s", err);
    cr_assert(strstr(err, "at most 16 values"), "%s", err);
    char *models[40] = {bin};
    for (int i = 0; i < 17; i++) models[1 + 2 * i] = "-m", models[2 + 2 * i] = "x.gguf";
    cr_assert_eq(bench_run(models), 1, "17 models: %s", err);
    cr_assert(strstr(err, "at most 16 models"), "%s", err);
    LEAK_CHECK();
}

/* --delay S sleeps S seconds before each test but the first: two tests
 * take at least one second. */
Test(bench_cli, delay_between_tests) {
    char bin[600], a[] = "/tmp/infer-bench-w-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_F32, 9);
    char *argv[] = {bin, "-m", a, "-p", "4", "-n", "2", "-r", "1", "--delay", "1", NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int rc = bench_run(argv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    unlink(a);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    cr_assert_geq((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9, 1.0);
    cr_assert_eq(test_count(out, "\n| llama"), 2, "%s", out);
    LEAK_CHECK();
}

/* llama-bench's -d: each test after that many tokens in the cache, named
 * "pp8 @ d40" as llama-bench names it; a depth list multiplies the rows
 * (per depth the pp, then the tg tests, as llama-bench orders them); JSON
 * carries n_depth. A depth beyond the synthetic model's context is still a
 * context infer-bench sizes for it. */
Test(bench_cli, depth_as_llama_bench) {
    char bin[600], a[] = "/tmp/infer-bench-d-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_Q8_0, 5);
    char *argv[] = {bin, "-m", a, "-p", "8", "-n", "4", "-d", "0,40", "-r", "1", NULL};
    int rc = bench_run(argv);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    static const char *const TESTS[] = {"pp8", "tg4", "pp8 @ d40", "tg4 @ d40"};
    char row[1024], c[128];
    for (int k = 0; k < 4; k++) {
        cr_assert(test_md_row(out, 2 + k, row, sizeof row), "row %d missing:\n%s", k, out);
        cell_is(row, 5, TESTS[k]);
        test_md_cell(row, 6, c, sizeof c);
        cr_assert(atof(c) > 0, "t/s %s", c);
    }
    cr_assert_not(test_md_row(out, 6, row, sizeof row), "one row per test and depth: %s", out);
    char *json[] = {bin, "-m", a, "-p", "0", "-n", "2", "-d", "600", "-r", "1", "-o", "json", NULL};
    bench_last_run(json, a);
    cr_assert_eq(test_count(out, "\"n_depth\": 600,"), 1, "%s", out);
    char *bad[] = {bin, "-m", "/nonexistent", "-d", "-1", NULL};
    cr_assert_neq(bench_run(bad), 0);
    cr_assert(strstr(err, "-d: bad value"), "%s", err);
    LEAK_CHECK();
}

/* --kernels runs the matmuls on -t's threads, placed and polling as -C,
 * --cpu-strict and --poll say (one value each); a CPU the machine lacks
 * is refused, naming it. */
Test(bench_cli, kernels_take_threads_and_placement) {
    char bin[600], hex[300];
    bench_bin(bin, sizeof bin);
    int first, outside;
    test_own_cpus(&first, &outside);
    test_cpu_hex(first, hex, sizeof hex);
    char *argv[] = {bin, "--kernels", "-t", "1", "-C", hex, "--cpu-strict", "1", "--poll", "0", NULL};
    cr_assert_eq(test_run(argv, "INFER_BENCH_TYPES=q4_0", out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
    cr_assert(strstr(out, "## Kernels: matmul per weight type (1 thread)\n"), "%s", out);
    char row[1024], c[128];
    cr_assert(test_md_row(out, 1, row, sizeof row), "%s", out);
    test_md_cell(row, 5, c, sizeof c);
    cr_assert(atof(c) > 0, "tg GB/s in %s", row);
    char *two[] = {bin, "--kernels", "-t", "1,2", NULL};
    cr_assert_eq(bench_run(two), 1);
    cr_assert(strstr(err, "--kernels takes one value"), "%s", err);
    if (outside >= 0) {
        char far[300], cpu[32];
        test_cpu_hex(outside, far, sizeof far);
        char *refused[] = {bin, "--kernels", "-t", "2", "-C", far, NULL};
        cr_assert_eq(test_run(refused, "INFER_BENCH_TYPES=q4_0", out, sizeof out, err, sizeof err), 3, "%s", err);
        snprintf(cpu, sizeof cpu, "CPU %d", outside);
        cr_assert(strstr(err, cpu), "%s", err);
    }
}

/* --kernels: the matmul table (limited to Q4_0 by INFER_BENCH_TYPES) has
 * one row per SIMD level of this machine, in the layout that level runs a
 * model's Q4_0 in, with positive figures; the other ops' table has one row
 * per kernel-table entry the forward pass calls and per level, the
 * reference included, each with a positive time and GB/s (and GFLOP/s for
 * the attention's products). */
Test(bench_cli, kernels_tables_per_level) {
    char bin[600];
    bench_bin(bin, sizeof bin);
    char *argv[] = {bin, "--kernels", NULL};
    const int rc = test_run(argv, "INFER_BENCH_TYPES=q4_0", out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    char head[64];
    const int nth = infer_default_threads();
    snprintf(head, sizeof head, "## Kernels: matmul per weight type (%d thread%s)", nth, nth == 1 ? "" : "s");
    cr_assert(strstr(out, head), "the default threads: %s", out);
    cr_assert(strstr(out, "## Kernels: matmul per weight type"), "%s", out);
    cr_assert(strstr(out, "## Kernels: the other ops per level"), "%s", out);
    const kernel_table *simd[INFER_ISA_COUNT], *all[INFER_ISA_COUNT];
    int n_simd = 0, n_all = 0;
    for (int i = INFER_ISA_REF; i < INFER_ISA_COUNT; i++) {
        const kernel_table *kt = kernels_for((infer_isa)i);
        if (!kt) continue;
        all[n_all++] = kt;
        if (i != INFER_ISA_REF) simd[n_simd++] = kt;
    }
    char row[1024], c[128];
    int k = 1; /* row 0: the matmul table's header */
    for (int l = 0; l < n_simd; l++, k++) {
        cr_assert(test_md_row(out, k, row, sizeof row), "matmul row %d missing:\n%s", l, out);
        cell_is(row, 0, simd[l]->name);
        cell_is(row, 1, "q4_0"); /* INFER_BENCH_TYPES=q4_0 times Q4_0 alone */
        uint64_t rb = 0;
        infer_type_row_bytes(INFER_TYPE_Q4_0, 2048, &rb);
        const int repacked = simd[l]->packed_size && simd[l]->packed_size(INFER_TYPE_Q4_0, 5632, 2048) == rb * 5632;
        cell_is(row, 2, repacked ? "repacked" : "file");
        for (int i = 3; i < 7; i++) {
            test_md_cell(row, i, c, sizeof c);
            cr_assert(atof(c) > 0, "cell %d of %s", i, row);
        }
    }
    cr_assert(test_md_row(out, k, row, sizeof row));
    cr_assert(strstr(row, "| level | kernel |"), "the ops table's header after the matmul rows: %s", row);
    k++;
    static const char *const OPS[] = {"quantize_act q8_0", "quantize_act q8_K", "quantize_act f16", "dequantize q4_0",
                                      "rms_norm", "silu_mul", "add", "softmax", "matmul_kn f16: attention scores",
                                      "matmul_kn f16: attention values"};
    for (size_t op = 0; op < sizeof OPS / sizeof OPS[0]; op++) {
        for (int l = 0; l < n_all; l++, k++) {
            cr_assert(test_md_row(out, k, row, sizeof row), "%s at %s missing:\n%s", OPS[op], all[l]->name, out);
            cell_is(row, 0, all[l]->name);
            test_md_cell(row, 1, c, sizeof c);
            cr_assert(!strncmp(c, OPS[op], strlen(OPS[op])), "%s, want %s", row, OPS[op]);
            test_md_cell(row, 3, c, sizeof c);
            cr_assert(atof(c) > 0, "ns per call: %s", row);
            test_md_cell(row, 4, c, sizeof c);
            cr_assert(atof(c) > 0, "GB/s: %s", row);
            test_md_cell(row, 5, c, sizeof c);
            cr_assert_eq(c[0] != '\0', strstr(OPS[op], "matmul_kn") != NULL, "GFLOP/s for the products only: %s", row);
        }
    }
    cr_assert_not(test_md_row(out, k, row, sizeof row), "no rows beyond: %s", row);
    LEAK_CHECK();
}

/* No -t under a one-CPU mask (the child inherits it): one thread, the CPUs
 * the process may run on. The default used to be one per online CPU. */
Test(bench_cli, default_threads_follow_affinity) {
    char bin[600], a[] = "/tmp/infer-bench-t-XXXXXX";
    bench_bin(bin, sizeof bin);
    make_model(a, INFER_TYPE_F32, 6);
    cpu_set_t saved;
    cr_assert(test_pin_to_first(1, &saved));
    char *argv[] = {bin, "-m", a, "-p", "4", "-n", "2", "-r", "1", NULL};
    const int rc = bench_run(argv);
    cr_assert_eq(sched_setaffinity(0, sizeof saved, &saved), 0);
    unlink(a);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    char row[1024], c[64];
    for (int r = 2; r <= 3; r++) { /* the pp4 and tg2 rows */
        cr_assert(test_md_row(out, r, row, sizeof row), "%s", out);
        test_md_cell(row, 4, c, sizeof c);
        cr_expect_str_eq(c, "1", "threads in '%s'", row);
    }
    LEAK_CHECK();
}

/* The model cell of infer-bench's first row for the model at path. */
static void model_cell(const char *bin, const char *path, char *c, size_t cap) {
    char *argv[] = {(char *)bin, "-m", (char *)path, "-p", "0", "-n", "1", "-r", "1", NULL};
    cr_assert_eq(bench_run(argv), 0, "stderr: %s", err);
    char row[1024];
    cr_assert(test_md_row(out, 2, row, sizeof row), "%s", out);
    test_md_cell(row, 0, c, cap);
}

Test(bench_cli, model_named_by_file_type_as_llama_bench) {
    /* general.file_type names the model as llama-bench does ("Q4_K -
     * Medium" for a Q4_K_M mixture); a file without it (the synthetic
     * writer's) is named by its most common matrix type. */
    char bin[600], qbin[600], a[] = "/tmp/infer-bench-f-XXXXXX", q[] = "/tmp/infer-bench-q-XXXXXX", c[128];
    bench_bin(bin, sizeof bin);
    test_tool_bin(qbin, sizeof qbin, "infer-quantize");
    make_model_sized(a, INFER_TYPE_F32, 4, 1);
    int fd = mkstemp(q);
    cr_assert_geq(fd, 0);
    close(fd);
    char *quant[] = {qbin, a, q, "Q4_K_M", NULL};
    cr_assert_eq(bench_run(quant), 0, "infer-quantize: %s", err);
    model_cell(bin, a, c, sizeof c);
    cr_assert(strstr(c, " F32") && !strstr(c, "all F32"), "no file type: %s", c);
    model_cell(bin, q, c, sizeof c);
    unlink(a), unlink(q);
    const size_t n = strlen(c), k = strlen(" Q4_K - Medium");
    cr_assert(n > k && !strcmp(c + n - k, " Q4_K - Medium"), "Q4_K_M file: %s", c);
    LEAK_CHECK();
}

Test(bench_cli, bad_options_and_missing_models) {
    char bin[600];
    bench_bin(bin, sizeof bin);
    char *no_model[] = {bin, "-p", "8", NULL};
    cr_assert_neq(bench_run(no_model), 0, "no -m must fail");
    cr_assert(strstr(err, "usage") || strstr(err, "-m"), "%s", err);
    char *bad_out[] = {bin, "-m", "x.gguf", "-o", "sql", NULL};
    cr_assert_neq(bench_run(bad_out), 0, "-o sql must fail");
    char *bad_reps[] = {bin, "-m", "x.gguf", "-r", "65", NULL};
    cr_assert_neq(bench_run(bad_reps), 0, "-r 65 must fail");
    cr_assert(strstr(err, "at most 64"), "%s", err);
    static const char *const bad_pg[] = {"8", "8,0", "8,4,2", "x,4"};
    for (int i = 0; i < 4; i++) {
        char *argv[] = {bin, "-m", "x.gguf", "-pg", (char *)bad_pg[i], NULL};
        cr_assert_neq(bench_run(argv), 0, "-pg %s must fail", bad_pg[i]);
    }
    char *missing[] = {bin, "-m", "/nonexistent/model.gguf", "-p", "8", "-n", "0", "-r", "1", NULL};
    cr_assert_eq(bench_run(missing), 3, "stderr: %s", err);
    cr_assert(strstr(err, "/nonexistent/model.gguf"), "the message names the file: %s", err);
    LEAK_CHECK();
}
