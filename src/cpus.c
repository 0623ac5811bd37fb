/*
 * cpus.c - how many threads to run when the user names none: the CPUs this
 * process may run on, not the CPUs the machine has. A process pinned with
 * taskset / a cpuset, or a container given a CPU quota (cgroup v2 cpu.max,
 * `docker --cpus`), that starts one thread per online CPU puts two or more
 * threads on a CPU; each job of the pool then waits for a thread that is
 * not running, and generation slows several-fold (README, "Threads").
 * Also llama.cpp's ways to say where threads run and at what priority
 * (-C, -Cr, --prio), as the CLI and infer-bench read them.
 */
#include "util.h"

#include <errno.h>

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "infer.h"

/* Decimal digits at *s into *v, moving *s past them; 0 when there are
 * none or the value passes 2^63. */
static int read_u64(const char **s, uint64_t *v) {
    const char *p = *s;
    uint64_t x = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (x > (UINT64_C(1) << 63) / 10) return 0;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (p == *s) return 0;
    *s = p, *v = x;
    return 1;
}

/* "QUOTA PERIOD" (cgroup v2 cpu.max) -> CPUs it allows, rounded up; 0 for
 * "max", for anything else that is not two unsigned decimals and an end
 * of line, and for a zero quota or period. */
int cpus_from_quota(const char *s) {
    uint64_t quota, period;
    if (!s || !read_u64(&s, &quota) || *s++ != ' ' || !read_u64(&s, &period) || quota == 0 || period == 0) return 0;
    for (; *s; s++)
        if (*s != '\n' && *s != ' ') return 0;
    const uint64_t n = quota / period + (quota % period != 0);
    return n > (uint64_t)INT_MAX ? INT_MAX : (int)n;
}

/* The first line of a file, at most cap - 1 bytes; 0 when unreadable. */
static int read_line(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    const int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok;
}

/* The tightest cpu.max quota on the way from this process's cgroup (v2) up
 * to the root; 0 when none is set or there is no cgroup v2. */
static int cgroup_quota_cpus(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[1024], dir[1200];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::/", 4) == 0) {
            char *nl = strchr(line, '\n'); /* none: the line was cut, so not used */
            if (nl) {
                *nl = '\0';
                found = (size_t)snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", line + 3) < sizeof dir;
            }
            break;
        }
    }
    fclose(f);
    if (!found) return 0;
    int best = 0;
    for (;;) {
        char path[1300], val[128];
        if ((size_t)snprintf(path, sizeof path, "%s/cpu.max", dir) < sizeof path && read_line(path, val, sizeof val)) {
            const int n = cpus_from_quota(val);
            if (n > 0 && (best == 0 || n < best)) best = n;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || strcmp(dir, "/sys/fs/cgroup") == 0) break;
        *slash = '\0';
    }
    return best;
}

/* CPUs in this thread's affinity mask; 0 when it cannot be read. */
static int affinity_cpus(void) {
    long conf = sysconf(_SC_NPROCESSORS_CONF); /* -1 when unknown: CPU_SETSIZE then */
    if (conf < CPU_SETSIZE) conf = CPU_SETSIZE;
    if (conf > 65536) conf = 65536;
    cpu_set_t *set = CPU_ALLOC((int)conf);
    if (!set) return 0;
    const size_t size = CPU_ALLOC_SIZE((int)conf);
    CPU_ZERO_S(size, set);
    const int n = sched_getaffinity(0, size, set) == 0 ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    return n;
}

int cpus_in_mask(const uint64_t *mask) {
    const long conf = sysconf(_SC_NPROCESSORS_CONF); /* -1 when unknown: every CPU counts */
    int n = 0, all = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!((mask[cpu / 64] >> (cpu % 64)) & 1)) continue;
        all++;
        n += conf < 0 || cpu < conf;
    }
    return n ? n : all;
}

int infer_default_threads(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? (online > INT_MAX ? INT_MAX : (int)online) : 1;
    const int aff = affinity_cpus();
    if (aff > 0 && aff < n) n = aff;
    const int quota = cgroup_quota_cpus();
    if (quota > 0 && quota < n) n = quota;
    return n;
}

int cpu_mask_parse(const char *s, uint64_t *mask) {
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
    const size_t n = strlen(s);
    if (n == 0) return -1;
    uint64_t m[INFER_CPU_MASK_WORDS] = {0};
    for (size_t i = 0; i < n; i++) { /* i: the digit's place from the right, CPUs 4i .. 4i+3 */
        const int d = infer_hex_digit(s[n - 1 - i]);
        if (d < 0) return -1;
        if (d == 0) continue;
        if (i >= INFER_CPU_MASK_WORDS * 16) return -1; /* a CPU past the last */
        m[i / 16] |= (uint64_t)d << (4 * (i % 16));
    }
    for (int w = 0; w < INFER_CPU_MASK_WORDS; w++) mask[w] |= m[w];
    return 0;
}

/* Decimal digits at *s (none: def), moving *s past them; -1 past max. */
static long read_cpu(const char **s, long def, long max) {
    if (**s < '0' || **s > '9') return def;
    long v = 0;
    for (; **s >= '0' && **s <= '9'; (*s)++) {
        v = v * 10 + (**s - '0');
        if (v > max) return -1;
    }
    return v;
}

int cpu_range_parse(const char *s, uint64_t *mask) {
    const long last = INFER_CPU_MASK_WORDS * 64 - 1;
    const long lo = read_cpu(&s, 0, last);
    if (lo < 0 || *s++ != '-') return -1;
    const long hi = read_cpu(&s, last, last);
    if (hi < 0 || *s || hi < lo) return -1;
    for (long c = lo; c <= hi; c++) mask[c / 64] |= UINT64_C(1) << (c % 64);
    return 0;
}

int process_priority_set(int level) {
    static const int NICE[] = {5, 0, -5, -10, -20}; /* levels -1 .. 3 */
    if (level < -1 || level > 3) return EINVAL;
    if (level == 0) return 0;
    return setpriority(PRIO_PROCESS, 0, NICE[level + 1]) == 0 ? 0 : errno;
}
