/* bench_report.h - infer-bench's results and how they are printed
 * (bench_report.c): llama-bench's markdown table, CSV, JSON, JSONL and
 * SQL. */
#ifndef INFER_BENCH_REPORT_H
#define INFER_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#define MAX_REPS 64 /* samples kept per test */

enum { OUT_MD, OUT_CSV, OUT_JSON, OUT_JSONL, OUT_SQL };
/* The option columns of the markdown table (see bench_opts.shown). */
enum { SHOW_B = 1, SHOW_UB = 2, SHOW_KV = 4, SHOW_FA = 8, SHOW_MMP = 16, SHOW_CM = 32, SHOW_CS = 64, SHOW_POLL = 128 };

/* One test: what it ran with and what it measured. */
typedef struct {
    const char *model_path;
    char desc[96];
    uint64_t size, params;
    uint64_t streamed; /* bytes of weights a generated token reads */
    int threads;
    const char *cpu_mask; /* -C as given ("0x0": none) */
    const uint64_t *cpu_bits; /* and parsed: INFER_CPU_MASK_WORDS words */
    int cpu_strict, poll; /* --cpu-strict, --poll */
    int n_batch, n_ubatch; /* -b and -ub */
    uint32_t kv_type;
    int use_mmap;         /* the model mapped (1) or read (0) */
    int flash_attn;       /* -fa's value (recorded; one attention either way) */
    int backend, device;  /* asked for */
    const char *ran_on;   /* "CPU" or "Vulkan": where it ran */
    int on_cpu;           /* ran on the CPU: % bw (of the host-memory probe) applies */
    int n_prompt, n_gen;
    int depth;           /* tokens in the cache before the timed part (llama-bench's -d) */
    double mean, sd;     /* tokens per second */
    double samples[MAX_REPS]; /* each repetition's tokens per second */
    int n_samples;
    char test_time[32];  /* when the test started, UTC, as llama-bench writes it */
    double gbs, bw_pct;  /* generation only: GB/s, mean share of the probe taken before each repetition */
    double probe_gbs, probe_hi; /* the lowest and highest of those probes */
    double ttft_ms;      /* prompt tests: time to first token */
    double load_ms;
    double rss_mib;
} result;

/* Where results go: stdout (-o) and, with -oe, stderr as well; a printer
 * of format -1 prints nothing. */
typedef struct {
    FILE *f;
    int format; /* OUT_*, or -1: none */
    int shown;  /* SHOW_* */
    int first;  /* no row yet */
} printer;

/* The mean and sample standard deviation (0 for one value) of x[0, n), n >= 1. */
void mean_sd(const double *x, int n, double *mean, double *sd);

void report_begin(printer *p);
void report_row(printer *p, const result *r);
void report_end(printer *p);
/* llama-bench's name of a test: pp512, tg128, pp512+tg128, "pp512 @ d4096". */
void report_test_name(const result *r, char *test, size_t cap);
/* Read the machine's description (cpu_info, gpu_info) for the records
 * once; before the first report_row of a format other than md. */
void report_machine_info(void);

#endif
