/*
 * util.h - internal helpers every module uses: checked size arithmetic,
 * the allocator (with failure injection for tests), and error reporting.
 */
#ifndef INFER_UTIL_H
#define INFER_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "infer.h"
#include "infer_gguf.h"

/* ---- checked arithmetic: 1 on overflow, result stored otherwise -------- */
#define ck_mul(a, b, res) __builtin_mul_overflow((a), (b), (res))
#define ck_add(a, b, res) __builtin_add_overflow((a), (b), (res))

/* Round x up to a multiple of align (a power of two); 1 on overflow. */
static inline int ck_align_up(uint64_t x, uint64_t align, uint64_t *res) {
    uint64_t t;
    if (ck_add(x, align - 1, &t)) return 1;
    *res = t & ~(align - 1);
    return 0;
}

static inline int is_pow2_u64(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* One hex digit's value (either case), or -1. */
static inline int infer_hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- hashing ------------------------------------------------------------ */
/* FNV-1a over s[0..n) from h (start with INFER_HASH_SEED; chain to hash
 * several pieces), and a table slot for it (mask = capacity - 1, a power
 * of two): the high bits mixed down first. */
#define INFER_HASH_SEED 0xcbf29ce484222325ull
static inline uint64_t infer_hash_bytes(const char *s, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}
static inline size_t infer_hash_slot(uint64_t h, size_t mask) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & mask;
}
/* Slots for an open-addressing table of n entries kept at most half full:
 * the least power of two >= 2n, at least 16, into *cap; -1 on overflow. */
static inline int infer_hash_capacity(size_t n, size_t *cap) {
    size_t want, c = 16;
    if (__builtin_mul_overflow(n, (size_t)2, &want)) return -1;
    while (c < want) {
        if (__builtin_mul_overflow(c, (size_t)2, &c)) return -1;
    }
    *cap = c;
    return 0;
}

/* ---- allocation -------------------------------------------------------- */
/* Thin wrappers over malloc/calloc/realloc/free (so free() releases what
 * they return). For tests, infer_alloc_fail_at(k) makes the k-th allocation
 * from now fail (1 = the next one); 0 turns injection off. */
void *infer_malloc(size_t n);
void *infer_calloc(size_t n, size_t size); /* checked n*size */
void *infer_realloc(void *p, size_t n);
void *infer_malloc_array(size_t n, size_t size); /* checked n*size, uninitialised */
char *infer_strndup(const char *s, size_t len); /* s[0, len) and a NUL; checked len + 1 */
void infer_free(void *p);
void infer_alloc_fail_at(uint64_t k);
/* Large page-aligned buffers (anonymous mappings, transparent huge pages
 * asked for), zero-filled; released with infer_unmap(p, n). Counted by the
 * same failure injection. */
void *infer_map(size_t n);
void infer_unmap(void *p, size_t n);
uint64_t infer_alloc_count(void); /* allocations made since start */
/* For tests: infer_alloc_track(1) starts counting the bytes these wrappers
 * hold (usable sizes of blocks, lengths of maps) from zero, 0 stops;
 * infer_alloc_peak is the most held between the start and the stop (kept
 * until the next start). Blocks from before the start count against it
 * when freed; free() of a wrapper's block bypasses the count. */
void infer_alloc_track(int on);
uint64_t infer_alloc_peak(void);

/* ---- errors ------------------------------------------------------------ */
/* Fill err (if not NULL) with status and a printf-style message; returns
 * status so callers can `return set_error(err, INFER_EFORMAT, ...)`. */
infer_status set_error(infer_error *err, infer_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* infer_malloc / infer_free with a user-data pointer (ignored): the
 * allocator for libraries that take one (PCRE2's general contexts), so
 * their memory counts and fails as ours does. */
void *infer_malloc_ud(size_t n, void *ud);
void infer_free_ud(void *p, void *ud);

/* The whole regular file at path into a new infer_malloc'd buffer (*buf,
 * *size; free with infer_free): INFER_EIO naming why (cannot open, not a
 * regular file, larger than max bytes, a read error), INFER_ENOMEM. */
infer_status infer_read_file(const char *path, size_t max, uint8_t **buf, size_t *size, infer_error *err);
/* The two steps of it the GGUF reader shares: path opened read-only (*fd,
 * close-on-exec) when it is a regular file of at most max bytes (*size);
 * INFER_EIO naming why not, with nothing left open. And buf[off, off +
 * size) read whole from fd at those offsets: INFER_EIO on a read error or
 * a file that shrank ("WHAT: ..."). */
infer_status infer_open_regular(const char *path, size_t max, int *fd, struct stat *st, infer_error *err);
infer_status infer_pread_all(int fd, uint8_t *buf, size_t off, size_t size, const char *what, infer_error *err);

/* Write at most cap-1 bytes of s (len bytes, any content) into out as
 * printable ASCII: other bytes become \xNN, and an ellipsis marks a cut.
 * Returns out. Used to quote names from files in messages. */
char *escape_bytes(const char *s, size_t len, char *out, size_t cap);
/* escape_bytes of a C string (NULL: ""). */
static inline char *escape_cstr(const char *s, char *out, size_t cap) {
    return escape_bytes(s ? s : "", s ? strlen(s) : 0, out, cap);
}

/* Bytes of the well-formed UTF-8 sequence at s[i] (i < n): 1 for ASCII,
 * 2-4 for a code point of U+0080..U+10FFFF in its shortest form and not a
 * surrogate, 0 for anything else. */
size_t utf8_valid_len(const unsigned char *s, size_t n, size_t i);

/* s (len bytes, any content) as a JSON string on f: well-formed UTF-8 as
 * it is; quotes, backslashes and control characters escaped; every other
 * byte as \u00XX (its Latin-1 reading), so the output is always valid
 * UTF-8 and valid JSON (RFC 8259). */
void json_put_str(FILE *f, const char *s, size_t len);

/* cpus.c: CPUs a cgroup v2 cpu.max line ("QUOTA PERIOD") allows, rounded up; 0: no limit or unparsable */
int cpus_from_quota(const char *s);
/* cpus.c: CPUs of a mask (bit i of word w = CPU 64 * w + i, 16 words)
 * that the machine has (below _SC_NPROCESSORS_CONF); the mask's own count
 * when it has none of them. Not the process's affinity: a thread may
 * widen its own to any CPU of its cpuset, and -C asks for that. */
int cpus_in_mask(const uint64_t *mask);
/* cpus.c, llama.cpp's CPU options. A mask is INFER_CPU_MASK_WORDS words, bit i
 * of word w = CPU 64 * w + i (infer_context_params.cpu_mask).
 * cpu_mask_parse: -C's hex (an optional 0x; the last digit is CPUs 0-3),
 * cpu_range_parse: -Cr's "LO-HI" (LO left out: 0, HI: the last CPU); each
 * ORs its CPUs into mask and returns 0, or -1 (mask untouched) on any
 * other text or a CPU past the last. */
int cpu_mask_parse(const char *s, uint64_t *mask);
int cpu_range_parse(const char *s, uint64_t *mask);
/* --prio's levels -1 (low) .. 3 (realtime) as llama.cpp sets them: the
 * process's nice value 5, 0, -5, -10, -20 (0 leaves it); 0 or an errno. */
int process_priority_set(int level);

#endif
