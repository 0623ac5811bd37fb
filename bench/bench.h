/* bench.h - the parts of infer-bench in files of their own. */
#ifndef INFER_BENCH_H
#define INFER_BENCH_H

#include <stdio.h>

/* bench_kernels.c: per-kernel GFLOP/s and GB/s at every dispatch level
 * (--kernels); 0 on success. */
int bench_kernels(FILE *out);

/* bench_probe.c: the best read bandwidth of 10 passes over 512 MiB with
 * n_threads readers (1..64), in GB/s, measured in a child process; 0.0
 * when it cannot run. */
double bench_probe_bandwidth(int n_threads);
/* When this process is that child (argv: --probe-child N), runs the probe,
 * prints its GB/s, sets *rc (the exit status) and returns 1; else 0. */
int bench_probe_child(int argc, char **argv, int *rc);

#endif
