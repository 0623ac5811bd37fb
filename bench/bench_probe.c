/*
 * bench_probe.c - infer-bench's read bandwidth probe: the machine's read
 * bandwidth from memory, against which a generation test's GB/s of weights
 * is given as a share. It runs in a child process (this program again), so
 * that its 512 MiB buffer never counts in the benchmark's peak RSS. Its
 * readers run where the test's threads do (-C, --cpu-strict).
 */
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "infer.h"
#include "pool.h"
#include "util.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 64-byte vectors (GCC/clang vector extensions): wide loads on any ISA. */
typedef uint64_t v8u64 __attribute__((vector_size(64)));

typedef struct {
    const v8u64 *buf;
    size_t n;
    int streams; /* 1: one sequential pass; 4: four quarters at once, prefetched ahead */
    size_t read; /* vectors read */
    uint64_t sum;
} probe_arg;

/* How far apart the four streams' quarters start beyond a quarter: 36
 * vectors (2304 bytes). Quarters exactly a power of two apart (64 MiB in
 * 512 MiB) read ~11% slower on the development machine (37 against 41-42
 * GB/s, the same code alternating): streams whose addresses agree in
 * their low bits meet in the same DRAM banks. Offsets of 8 to 144
 * vectors read 39.7-42.2 GB/s, 35-37 the most. */
#define PROBE_STAGGER 36

/* A thread reads its part either as one sequential stream (what the
 * hardware prefetcher handles alone) or as four staggered streams, each
 * fetched ~3.4 KB ahead by software, the pattern of the generation
 * kernels. On the development machine one stream per thread reads ~30
 * GB/s and four prefetched streams ~41; the probe reports the best, so the
 * % of bandwidth column is measured against what the machine can give. */
static void *probe_read(void *v) {
    probe_arg *a = v;
    v8u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    a->read = 0;
    if (a->streams == 1) {
        size_t i = 0;
        for (; i + 4 <= a->n; i += 4) {
            s0 += a->buf[i];
            s1 += a->buf[i + 1];
            s2 += a->buf[i + 2];
            s3 += a->buf[i + 3];
        }
        a->read = i;
    } else if (a->n >= 4 * PROBE_STAGGER) {
        const size_t q = (a->n - 3 * PROBE_STAGGER) / 4, ahead = 54; /* 54 x 64 bytes */
        const v8u64 *b0 = a->buf, *b1 = b0 + q + PROBE_STAGGER, *b2 = b1 + q + PROBE_STAGGER, *b3 = b2 + q + PROBE_STAGGER;
        for (size_t i = 0; i < q; i++) {
            if (i + ahead < q) {
                __builtin_prefetch(&b0[i + ahead]);
                __builtin_prefetch(&b1[i + ahead]);
                __builtin_prefetch(&b2[i + ahead]);
                __builtin_prefetch(&b3[i + ahead]);
            }
            s0 += b0[i];
            s1 += b1[i];
            s2 += b2[i];
            s3 += b3[i];
        }
        a->read = 4 * q;
    }
    v8u64 t = s0 + s1 + s2 + s3;
    a->sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    return NULL;
}

/* Best of a few passes over 512 MiB with n_threads (1..64) readers, in
 * GB/s; each reader k on the CPUs a context's thread k would get from
 * opts (none: where the system puts it). 0.0 when a reader cannot be
 * placed there. */
static double probe_in_process(int n_threads, const pool_opts *opts) {
    const size_t bytes = (size_t)512 << 20, n = bytes / sizeof(v8u64);
    v8u64 *buf = aligned_alloc((size_t)2 << 20, bytes);
    double best = 0.0;
    if (!buf) return 0.0;
#ifdef MADV_HUGEPAGE
    (void)madvise(buf, bytes, MADV_HUGEPAGE); /* as the repacked weights (infer_map) */
#endif
    cpu_set_t cpus;
    pthread_attr_t attr[64];
    int placed = 1, n_attr = 0;
    if (pool_thread_cpus(opts, 0, &cpus)) placed = sched_setaffinity(0, sizeof cpus, &cpus) == 0;
    for (; placed && n_attr < n_threads; n_attr++) { /* reader t's attributes (0: unused) */
        if (pthread_attr_init(&attr[n_attr]) != 0) break;
        if (n_attr > 0 && pool_thread_cpus(opts, n_attr, &cpus))
            placed = pthread_attr_setaffinity_np(&attr[n_attr], sizeof cpus, &cpus) == 0;
    }
    placed = placed && n_attr == n_threads;
    memset(buf, 1, bytes);
    for (int pass = 0; placed && pass < 10; pass++) { /* 5 passes of each pattern, alternating */
        pthread_t th[64];
        probe_arg args[64];
        double t0 = now_s();
        int started = 1;
        for (int t = 0; t < n_threads; t++) {
            args[t] = (probe_arg){.buf = buf + n / (size_t)n_threads * (size_t)t, .n = n / (size_t)n_threads,
                                  .streams = pass % 2 ? 4 : 1};
            if (t && started == t) started += pthread_create(&th[t], &attr[t], probe_read, &args[t]) == 0;
        }
        probe_read(&args[0]);
        for (int t = 1; t < started; t++) pthread_join(th[t], NULL);
        if (started < n_threads) { /* a reader refused its CPUs: no bandwidth to report */
            best = 0.0;
            break;
        }
        size_t got = 0;
        for (int t = 0; t < n_threads; t++) got += args[t].read;
        double gbs = (double)got * sizeof(v8u64) / (now_s() - t0) / 1e9;
        if (gbs > best) best = gbs;
        if (args[0].sum == 42) fputc(' ', stderr); /* keep the sums alive */
    }
    for (int t = 0; t < n_attr; t++) pthread_attr_destroy(&attr[t]);
    free(buf);
    return best;
}

/* The probe runs in a child process so that its buffer never counts in
 * this process's peak RSS: this program again (/proc/self/exe), started
 * with PROBE_CHILD_ARG and the thread count, printing its GB/s on stdout.
 * A new program, not a fork: this process has threads (the context's pool,
 * OpenBLAS's), and a forked child of a threaded process may only call
 * async-signal-safe functions, where the probe allocates and starts
 * threads. 0.0 when it cannot run (no share of it is printed then). The
 * GPU list (bench_gpu_info) is found the same way, since a Vulkan driver
 * loaded here would count in the RSS too (lavapipe: ~56 MiB). */
#define PROBE_CHILD_ARG "--probe-child"
#define GPU_CHILD_ARG "--gpu-info-child"
extern char **environ;

/* Run this program with args (args[0] its name, NULL at the end) and read
 * its stdout into text (at most cap - 1 bytes, NUL-terminated): 0 when it
 * exited 0, else -1. */
static int run_self(char *const args[], char *text, size_t cap) {
    int fd[2];
    text[0] = '\0';
    if (pipe(fd) != 0) return -1;
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    if (posix_spawn_file_actions_init(&fa) == 0) {
        if (posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO) == 0 &&
            posix_spawn_file_actions_addclose(&fa, fd[0]) == 0 &&
            posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ) != 0)
            pid = -1;
        posix_spawn_file_actions_destroy(&fa);
    }
    close(fd[1]);
    size_t got = 0;
    for (ssize_t r; pid > 0 && got + 1 < cap && (r = read(fd[0], text + got, cap - 1 - got)) != 0;) {
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        got += (size_t)r;
    }
    text[got] = '\0';
    close(fd[0]);
    int st = 0;
    pid_t w = -1;
    if (pid > 0)
        while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {}
    return pid > 0 && w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

double bench_probe_bandwidth(int n_threads, const char *cpu_mask, int cpu_strict) {
    char nbuf[16], text[64];
    snprintf(nbuf, sizeof nbuf, "%d", n_threads);
    char *args[] = {"infer-bench", PROBE_CHILD_ARG, nbuf, (char *)cpu_mask, cpu_strict ? "1" : "0", NULL};
    if (run_self(args, text, sizeof text) != 0) return 0.0;
    char *end = NULL;
    const double gbs = strtod(text, &end);
    return end == text || !(gbs > 0.0 && gbs < 1e6) ? 0.0 : gbs;
}

void bench_gpu_info(char *out, size_t cap) {
    char *args[] = {"infer-bench", GPU_CHILD_ARG, NULL};
    if (run_self(args, out, cap) != 0) out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* The Vulkan devices that are GPUs, ", " between their names, on stdout. */
static void print_gpus(void) {
    infer_device_info dev[8];
    size_t n = 0;
    infer_error err;
    if (infer_vulkan_devices(dev, 8, &n, &err) != INFER_OK) n = 0;
    int first = 1;
    for (size_t i = 0; i < n && i < 8; i++) {
        const int t = dev[i].type;
        if (t != INFER_DEVICE_INTEGRATED_GPU && t != INFER_DEVICE_DISCRETE_GPU && t != INFER_DEVICE_VIRTUAL_GPU) continue;
        printf("%s%.*s", first ? "" : ", ", (int)strcspn(dev[i].name, "\n"), dev[i].name);
        first = 0;
    }
    printf("\n");
}

int bench_probe_child(int argc, char **argv, int *rc) {
    if (argc == 2 && !strcmp(argv[1], GPU_CHILD_ARG)) {
        print_gpus();
        *rc = fflush(stdout) == 0 ? 0 : 1;
        return 1;
    }
    if (argc != 5 || strcmp(argv[1], PROBE_CHILD_ARG) != 0) return 0;
    const long n = strtol(argv[2], NULL, 10);
    uint64_t mask[INFER_CPU_MASK_WORDS] = {0};
    const pool_opts opts = {.cpu_mask = mask, .strict = !strcmp(argv[4], "1")};
    if (cpu_mask_parse(argv[3], mask) != 0) { /* the parent parsed it: not from infer-bench */
        *rc = 2;
        return 1;
    }
    printf("%.6f\n", probe_in_process(n < 1 ? 1 : n > 64 ? 64 : (int)n, &opts));
    *rc = fflush(stdout) == 0 ? 0 : 1;
    return 1;
}
