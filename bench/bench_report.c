/*
 * bench_report.c - infer-bench's output: llama-bench's markdown table (its
 * columns in its order, the option columns by its rule), and records of
 * the same fields as CSV, JSON, JSONL and SQL (llama-bench's names where
 * it has the field, its booleans, its build line).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_report.h"
#include "infer.h"
#include "util.h"

#ifndef INFER_GIT_REV
#define INFER_GIT_REV "unknown"
#endif

static void fmt_size(char *buf, size_t cap, uint64_t bytes) {
    double v = (double)bytes;
    if (v >= 1024.0 * 1024 * 1024) snprintf(buf, cap, "%.2f GiB", v / (1024.0 * 1024 * 1024));
    else snprintf(buf, cap, "%.2f MiB", v / (1024.0 * 1024));
}

static void fmt_params(char *buf, size_t cap, uint64_t n) {
    double v = (double)n;
    if (v >= 1e9) snprintf(buf, cap, "%.2f B", v / 1e9);
    else if (v >= 1e6) snprintf(buf, cap, "%.2f M", v / 1e6);
    else snprintf(buf, cap, "%.2f K", v / 1e3);
}

/* The columns of -C, --cpu-strict, --poll, -b, -ub, -ctk/-ctv, -fa and
 * -mmp after threads, as llama-bench adds its own (see bench_opts.shown). */
static void print_md_opt_cells(FILE *f, int shown, const result *r) {
    if (shown & SHOW_CM) fprintf(f, " %10s |", r->cpu_mask);
    if (shown & SHOW_CS) fprintf(f, " %10d |", r->cpu_strict);
    if (shown & SHOW_POLL) fprintf(f, " %10d |", r->poll);
    if (shown & SHOW_B) fprintf(f, " %7d |", r->n_batch);
    if (shown & SHOW_UB) fprintf(f, " %8d |", r->n_ubatch);
    if (shown & SHOW_KV) fprintf(f, " %-6s | %-6s |", infer_type_name(r->kv_type), infer_type_name(r->kv_type));
    if (shown & SHOW_FA) fprintf(f, " %2d |", r->flash_attn);
    if (shown & SHOW_MMP) fprintf(f, " %4d |", r->use_mmap);
}

static void print_md_header(FILE *f, int shown) {
    fprintf(f, "| %-30s | %10s | %10s | %-10s | %7s |", "model", "size", "params", "backend", "threads");
    if (shown & SHOW_CM) fprintf(f, " %10s |", "cpu_mask");
    if (shown & SHOW_CS) fprintf(f, " %10s |", "cpu_strict");
    if (shown & SHOW_POLL) fprintf(f, " %10s |", "poll");
    if (shown & SHOW_B) fprintf(f, " %7s |", "n_batch");
    if (shown & SHOW_UB) fprintf(f, " %8s |", "n_ubatch");
    if (shown & SHOW_KV) fprintf(f, " %-6s | %-6s |", "type_k", "type_v");
    if (shown & SHOW_FA) fprintf(f, " %2s |", "fa");
    if (shown & SHOW_MMP) fprintf(f, " %4s |", "mmap");
    fprintf(f, " %15s | %20s | %8s | %6s | %9s | %8s | %8s |\n", "test", "t/s", "GB/s", "% bw", "ttft ms", "load ms",
           "rss MiB");
    fprintf(f, "| ------------------------------ | ---------: | ---------: | ---------- | ------: |");
    for (int k = 0; k < 3; k++)
        if (shown & (SHOW_CM << k)) fprintf(f, " ---------: |");
    if (shown & SHOW_B) fprintf(f, " ------: |");
    if (shown & SHOW_UB) fprintf(f, " -------: |");
    if (shown & SHOW_KV) fprintf(f, " ------ | ------ |");
    if (shown & SHOW_FA) fprintf(f, " -: |");
    if (shown & SHOW_MMP) fprintf(f, " ---: |");
    fprintf(f, " --------------: | -------------------: | -------: | -----: | --------: | -------: | -------: |\n");
}

void report_test_name(const result *r, char *test, size_t cap) {
    if (r->n_prompt && r->n_gen) snprintf(test, cap, "pp%d+tg%d", r->n_prompt, r->n_gen);
    else if (r->n_prompt) snprintf(test, cap, "pp%d", r->n_prompt);
    else snprintf(test, cap, "tg%d", r->n_gen);
    if (r->depth) {
        const size_t l = strlen(test);
        snprintf(test + l, cap - l, " @ d%d", r->depth);
    }
}

static void print_md_row(FILE *f, int shown, const result *r) {
    char size[32], params[32], test[32], ts[48], gbs[16] = "", pct[16] = "", ttft[16] = "";
    fmt_size(size, sizeof size, r->size);
    fmt_params(params, sizeof params, r->params);
    report_test_name(r, test, sizeof test);
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->mean, r->sd);
    if (r->gbs > 0) {
        snprintf(gbs, sizeof gbs, "%.2f", r->gbs);
        if (r->on_cpu) snprintf(pct, sizeof pct, "%.1f", r->bw_pct);
    }
    if (r->ttft_ms > 0) snprintf(ttft, sizeof ttft, "%.1f", r->ttft_ms);
    fprintf(f, "| %-30s | %10s | %10s | %-10s | %7d |", r->desc, size, params, r->ran_on, r->threads);
    print_md_opt_cells(f, shown, r);
    fprintf(f, " %15s | %20s | %8s | %6s | %9s | %8.1f | %8.1f |\n", test, ts, gbs, pct, ttft, r->load_ms, r->rss_mib);
}

/* s quoted by q, each q in it doubled: a CSV field (q '"', RFC 4180) or
 * an SQL string literal (q '\''). */
static void quoted_str(FILE *f, const char *s, char q) {
    fputc(q, f);
    for (const char *p = s; *p; p++) {
        if (*p == q) fputc(q, f);
        fputc(*p, f);
    }
    fputc(q, f);
}

/* The fields of a JSON object, a JSONL line, a CSV row and an SQL row, in
 * this order, and their types (T TEXT, I INTEGER, R REAL, B a boolean:
 * true / false in JSON as llama-bench writes it, 0 / 1 elsewhere, an
 * INTEGER in SQL). From cpu_info on, llama-bench's fields of the same
 * names, added after infer-bench's first 27 so that those keep their
 * places: cpu_info and gpu_info (the CPU's model name; the Vulkan GPUs,
 * as llama-bench lists its GPU devices), test_time (UTC), each
 * repetition's time in ns with its mean and sd, and the threads' -C,
 * --cpu-strict and --poll. */
#define FIELD_LIST(X)                                                                                               \
    X(model_filename, 'T') X(model_type, 'T') X(model_size, 'I') X(model_n_params, 'I') X(backends, 'T')            \
    X(n_threads, 'I') X(n_batch, 'I') X(n_ubatch, 'I') X(type_k, 'T') X(type_v, 'T') X(flash_attn, 'B')             \
    X(use_mmap, 'B') X(n_prompt, 'I') X(n_gen, 'I') X(n_depth, 'I') X(avg_ts, 'R') X(stddev_ts, 'R') X(gbs, 'R')    \
    X(bw_pct, 'R') X(probe_gbs_min, 'R') X(probe_gbs_max, 'R') X(ttft_ms, 'R') X(load_ms, 'R') X(peak_rss_mib, 'R') \
    X(samples_ts, 'T') X(build_commit, 'T') X(build_version, 'T') X(cpu_info, 'T') X(gpu_info, 'T')                 \
    X(test_time, 'T') X(avg_ns, 'I') X(stddev_ns, 'I') X(samples_ns, 'T') X(cpu_mask, 'T') X(cpu_strict, 'B')      \
    X(poll, 'I')
#define FIELD_ENUM(name, type) F_##name,
#define FIELD_NAME(name, type) #name,
#define FIELD_TYPE(name, type) type,
enum { FIELD_LIST(FIELD_ENUM) N_FIELDS };
static const char *const FIELD_NAMES[N_FIELDS] = {FIELD_LIST(FIELD_NAME)};
static const char FIELD_TYPES[N_FIELDS] = {FIELD_LIST(FIELD_TYPE)};

/* The machine's description for cpu_info and gpu_info, read once. */
static char cpu_info[256], gpu_info[1024];

/* cpu_info: /proc/cpuinfo's first "model name" (x86), else "CPU"; gpu_info:
 * the Vulkan devices that are GPUs (bench_gpu_info). */
void report_machine_info(void) {
    snprintf(cpu_info, sizeof cpu_info, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    for (int k = 0; f && k < 4096 && fgets(line, sizeof line, f); k++) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        colon += 1 + (colon[1] == ' ');
        snprintf(cpu_info, sizeof cpu_info, "%.*s", (int)strcspn(colon, "\n"), colon);
        break;
    }
    if (f) fclose(f);
    bench_gpu_info(gpu_info, sizeof gpu_info);
}

/* xs[0, n) as a JSON array of numbers into buf (cut short, still closed,
 * when it does not fit); whole: as whole numbers. */
static void json_array(char *buf, size_t cap, const double *xs, int n, int whole) {
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < n && at + 40 < cap; k++)
        at += (size_t)snprintf(buf + at, cap - at, whole ? "%s%.0f" : "%s%.6f", k ? ", " : "", xs[k]);
    snprintf(buf + at, cap - at, "]");
}

void mean_sd(const double *x, int n, double *mean, double *sd) {
    double sum = 0.0, var = 0.0;
    for (int k = 0; k < n; k++) sum += x[k];
    *mean = sum / n;
    for (int k = 0; k < n; k++) var += (x[k] - *mean) * (x[k] - *mean);
    *sd = n > 1 ? sqrt(var / (n - 1)) : 0.0;
}
#define SQL_TABLE "infer_bench"

/* One result as a JSON object (OUT_JSON, OUT_JSONL), a CSV row or an SQL
 * INSERT, no newline. */
static void print_record(FILE *f, const result *r, int fmt) {
    const int json = fmt == OUT_JSON || fmt == OUT_JSONL, sql = fmt == OUT_SQL;
    const char *str[N_FIELDS] = {0}; /* the string fields; the others are numbers */
    char num[N_FIELDS][32] = {{0}}, samples[MAX_REPS * 24 + 8], samples_ns[MAX_REPS * 24 + 8];
#define NUM(i, fmt, x) snprintf(num[F_##i], sizeof num[F_##i], fmt, x)
    str[F_model_filename] = r->model_path;
    str[F_model_type] = r->desc;
    NUM(model_size, "%llu", (unsigned long long)r->size);
    NUM(model_n_params, "%llu", (unsigned long long)r->params);
    str[F_backends] = r->ran_on;
    NUM(n_threads, "%d", r->threads);
    NUM(n_batch, "%d", r->n_batch);
    NUM(n_ubatch, "%d", r->n_ubatch);
    str[F_type_k] = str[F_type_v] = infer_type_name(r->kv_type);
    NUM(flash_attn, "%d", r->flash_attn);
    NUM(use_mmap, "%d", r->use_mmap);
    NUM(n_prompt, "%d", r->n_prompt);
    NUM(n_gen, "%d", r->n_gen);
    NUM(n_depth, "%d", r->depth);
    NUM(avg_ts, "%.6f", r->mean);
    NUM(stddev_ts, "%.6f", r->sd);
    NUM(gbs, "%.4f", r->gbs);
    NUM(bw_pct, "%.2f", r->bw_pct);
    NUM(probe_gbs_min, "%.2f", r->probe_gbs);
    NUM(probe_gbs_max, "%.2f", r->probe_hi);
    NUM(ttft_ms, "%.3f", r->ttft_ms);
    NUM(load_ms, "%.3f", r->load_ms);
    NUM(peak_rss_mib, "%.1f", r->rss_mib);
    double ns[MAX_REPS], ns_mean = 0.0, ns_sd = 0.0; /* each repetition's time: its tokens over its t/s */
    for (int k = 0; k < r->n_samples; k++) ns[k] = (double)(r->n_prompt + r->n_gen) * 1e9 / r->samples[k];
    if (r->n_samples > 0) mean_sd(ns, r->n_samples, &ns_mean, &ns_sd);
    NUM(avg_ns, "%.0f", ns_mean);
    NUM(stddev_ns, "%.0f", ns_sd);
    NUM(cpu_strict, "%d", r->cpu_strict);
    NUM(poll, "%d", r->poll);
#undef NUM
    /* every repetition's t/s and ns: JSON arrays, or in CSV the same text quoted */
    json_array(samples, sizeof samples, r->samples, r->n_samples, 0);
    json_array(samples_ns, sizeof samples_ns, ns, r->n_samples, 1);
    str[F_samples_ts] = samples;
    str[F_build_commit] = INFER_GIT_REV;
    str[F_build_version] = infer_version();
    str[F_cpu_info] = cpu_info;
    str[F_gpu_info] = gpu_info;
    str[F_test_time] = r->test_time;
    str[F_samples_ns] = samples_ns;
    str[F_cpu_mask] = r->cpu_mask;
    if (json) fputc('{', f);
    if (sql) {
        fputs("INSERT INTO " SQL_TABLE " (", f);
        for (int i = 0; i < N_FIELDS; i++) fprintf(f, "%s%s", i ? ", " : "", FIELD_NAMES[i]);
        fputs(") VALUES (", f);
    }
    for (int i = 0; i < N_FIELDS; i++) {
        if (i) fputs(fmt == OUT_CSV ? "," : ", ", f);
        if (json) fprintf(f, "\"%s\": ", FIELD_NAMES[i]);
        if (json && FIELD_TYPES[i] == 'B') fputs(strcmp(num[i], "0") ? "true" : "false", f);
        else if (!str[i] || ((i == F_samples_ts || i == F_samples_ns) && json)) fputs(str[i] ? str[i] : num[i], f);
        else if (json) json_put_str(f, str[i], strlen(str[i]));
        else quoted_str(f, str[i], sql ? '\'' : '"');
    }
    if (json) fputc('}', f);
    if (sql) fputs(");", f);
}


void report_begin(printer *p) {
    p->first = 1;
    if (p->format == OUT_JSON) fprintf(p->f, "[\n");
    else if (p->format == OUT_MD) print_md_header(p->f, p->shown);
    else if (p->format == OUT_CSV) {
        for (int i = 0; i < N_FIELDS; i++) fprintf(p->f, "%s%s", i ? "," : "", FIELD_NAMES[i]);
        fputc('\n', p->f);
    } else if (p->format == OUT_SQL) {
        fprintf(p->f, "CREATE TABLE IF NOT EXISTS " SQL_TABLE " (\n");
        for (int i = 0; i < N_FIELDS; i++)
            fprintf(p->f, "  %s %s%s\n", FIELD_NAMES[i],
                    FIELD_TYPES[i] == 'T' ? "TEXT" : FIELD_TYPES[i] == 'R' ? "REAL" : "INTEGER",
                    i + 1 < N_FIELDS ? "," : "");
        fprintf(p->f, ");\n\n");
    }
}

void report_row(printer *p, const result *r) {
    if (p->format < 0) return;
    if (p->format == OUT_MD) print_md_row(p->f, p->shown, r);
    else {
        if (p->format == OUT_JSON) fputs(p->first ? "  " : ",\n  ", p->f);
        print_record(p->f, r, p->format);
        if (p->format != OUT_JSON) fputc('\n', p->f);
    }
    p->first = 0;
    fflush(p->f);
}

void report_end(printer *p) {
    if (p->format == OUT_JSON) fprintf(p->f, "\n]\n");
    else if (p->format == OUT_MD) fprintf(p->f, "\nbuild: %s (%s)\n", INFER_GIT_REV, infer_version());
}
