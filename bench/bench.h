/* bench.h - the parts of infer-bench in files of their own. */
#ifndef INFER_BENCH_H
#define INFER_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "pool.h"

/* bench_kernels.c: per-kernel GFLOP/s and GB/s at every dispatch level
 * (--kernels), the matmuls on a pool of n_threads placed and polling as
 * opts says (NULL: anywhere, poll 50); 0 on success. */
int bench_kernels(FILE *out, int n_threads, const pool_opts *opts);

/* bench_probe.c: the best read bandwidth of 10 passes over 512 MiB with
 * n_threads readers (1..64), in GB/s, measured in a child process; 0.0
 * when it cannot run. The readers are placed as a context's threads with
 * that -C mask (hex, "0x0": none) and --cpu-strict would be. */
double bench_probe_bandwidth(int n_threads, const char *cpu_mask, int cpu_strict);
/* The names of the Vulkan devices that are GPUs, ", " between them ("" with
 * no driver or none), found in a child process as the probe is. */
void bench_gpu_info(char *out, size_t cap);
/* When this process is one of those children (argv: --probe-child N MASK STRICT or
 * --gpu-info-child), does its work, prints the result, sets *rc (the
 * exit status) and returns 1; else 0. */
int bench_probe_child(int argc, char **argv, int *rc);

#endif
