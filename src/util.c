/* util.c - allocator wrappers with failure injection, error formatting,
 * escaping for messages, a whole-file reader, UTF-8 and JSON helpers. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Failure injection: the allocation whose sequence number equals fail_at
 * fails. Atomic so tests on several threads stay well defined. */
static _Atomic uint64_t alloc_seq;
static _Atomic uint64_t fail_at;

void infer_alloc_fail_at(uint64_t k) {
    atomic_store(&fail_at, k == 0 ? 0 : atomic_load(&alloc_seq) + k);
}

uint64_t infer_alloc_count(void) { return atomic_load(&alloc_seq); }

static int alloc_should_fail(void) {
    uint64_t seq = atomic_fetch_add(&alloc_seq, 1) + 1;
    uint64_t f = atomic_load(&fail_at);
    return f != 0 && seq == f;
}

/* Byte tracking (tests): while on, held counts what the wrappers hand out
 * (malloc_usable_size of each block, a map's length) less what comes back
 * through them, and peak its most since tracking was turned on. Blocks
 * allocated before then count negative when freed (or by their full size
 * less the growth when reallocated), so held may go below what is really
 * held and peak under-report: start tracking before what is measured
 * allocates. Signed, so that cannot wrap. One relaxed load per call when
 * off. */
static _Atomic int track_on;
static _Atomic int64_t track_held, track_peak;

void infer_alloc_track(int on) {
    if (on) {
        atomic_store(&track_held, 0);
        atomic_store(&track_peak, 0);
    }
    atomic_store(&track_on, on != 0);
}

uint64_t infer_alloc_peak(void) {
    int64_t p = atomic_load(&track_peak);
    return p > 0 ? (uint64_t)p : 0;
}

static void track(int64_t d) {
    int64_t now = atomic_fetch_add(&track_held, d) + d, p = atomic_load(&track_peak);
    while (now > p && !atomic_compare_exchange_weak(&track_peak, &p, now)) {
    }
}

static void *tracked(void *p) {
    if (p && atomic_load_explicit(&track_on, memory_order_relaxed)) track((int64_t)malloc_usable_size(p));
    return p;
}

void *infer_malloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    return tracked(malloc(n ? n : 1));
}

void *infer_calloc(size_t n, size_t size) {
    size_t total;
    if (ck_mul(n, size, &total)) return NULL;
    if (alloc_should_fail()) return NULL;
    return tracked(calloc(total ? total : 1, 1));
}

void *infer_malloc_array(size_t n, size_t size) {
    size_t total;
    if (ck_mul(n, size, &total)) return NULL;
    return infer_malloc(total);
}

char *infer_strndup(const char *s, size_t len) {
    size_t bytes;
    char *d = ck_add(len, (size_t)1, &bytes) ? NULL : infer_malloc(bytes);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

void *infer_realloc(void *p, size_t n) {
    if (alloc_should_fail()) return NULL;
    if (!atomic_load_explicit(&track_on, memory_order_relaxed)) return realloc(p, n ? n : 1);
    const size_t was = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n ? n : 1);
    if (q) track((int64_t)malloc_usable_size(q) - (int64_t)was);
    return q;
}

void infer_free(void *p) {
    if (p && atomic_load_explicit(&track_on, memory_order_relaxed)) track(-(int64_t)malloc_usable_size(p));
    free(p);
}

void *infer_map(size_t n) {
    if (alloc_should_fail()) return NULL;
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (atomic_load_explicit(&track_on, memory_order_relaxed)) track((int64_t)(n ? n : 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n ? n : 1, MADV_HUGEPAGE); /* fewer TLB misses when streaming weights; advisory */
#endif
    return p;
}

void infer_unmap(void *p, size_t n) {
    if (!p) return;
    if (atomic_load_explicit(&track_on, memory_order_relaxed)) track(-(int64_t)(n ? n : 1));
    munmap(p, n ? n : 1);
}

infer_status set_error(infer_error *err, infer_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

char *escape_bytes(const char *s, size_t len, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0) return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : (c == '\\' ? 2 : 4);
        if (o + need + 4 > cap) { /* room for "..." and NUL, or as much of "..." as fits */
            for (int k = 0; k < 3 && o + 1 < cap; k++) out[o++] = '.';
            break;
        }
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (need == 1) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

size_t utf8_valid_len(const unsigned char *s, size_t n, size_t i) {
    const unsigned c = s[i];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) need = 2;
    else if (c >= 0xe0 && c <= 0xef) need = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4) need = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else return 0; /* a continuation byte, an overlong lead (c0, c1), or past U+10FFFF (f5..ff) */
    if (n - i < need || s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k < need; k++) {
        if ((s[i + k] & 0xc0) != 0x80) return 0;
    }
    return need;
}

void json_put_str(FILE *f, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        const unsigned char c = p[i];
        const size_t n = utf8_valid_len(p, len, i);
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f || n == 0) fprintf(f, "\\u%04x", c);
        else fwrite(p + i, 1, n, f);
        i += n > 1 ? n : 1;
    }
    fputc('"', f);
}

const char *infer_status_name(infer_status s) {
    switch (s) {
    case INFER_OK: return "OK";
    case INFER_EINVAL: return "EINVAL";
    case INFER_EIO: return "EIO";
    case INFER_EFORMAT: return "EFORMAT";
    case INFER_EUNSUPPORTED: return "EUNSUPPORTED";
    case INFER_ENOMEM: return "ENOMEM";
    case INFER_ECTX_FULL: return "ECTX_FULL";
    case INFER_EBUSY: return "EBUSY";
    case INFER_EBACKEND: return "EBACKEND";
    case INFER_ECANCELLED: return "ECANCELLED";
    case INFER_ENOTFOUND: return "ENOTFOUND";
    }
    return "?";
}

void *infer_malloc_ud(size_t n, void *ud) {
    (void)ud;
    return infer_malloc(n);
}

void infer_free_ud(void *p, void *ud) {
    (void)ud;
    infer_free(p);
}

/* ---- files ------------------------------------------------------------- */

infer_status infer_open_regular(const char *path, size_t max, int *fd, struct stat *st, infer_error *err) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return set_error(err, INFER_EIO, "cannot open: %s", strerror(errno));
    infer_status s = INFER_OK;
    if (fstat(*fd, st) != 0) s = set_error(err, INFER_EIO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st->st_mode)) s = set_error(err, INFER_EIO, "not a regular file");
    else if ((uint64_t)st->st_size > max)
        s = max == SIZE_MAX ? set_error(err, INFER_EIO, "file too large for this address space")
                            : set_error(err, INFER_EIO, "larger than %zu bytes", max);
    if (s != INFER_OK) {
        close(*fd);
        *fd = -1;
    }
    return s;
}

infer_status infer_pread_all(int fd, uint8_t *buf, size_t off, size_t size, const char *what, infer_error *err) {
    size_t end;
    if (ck_add(off, size, &end)) return set_error(err, INFER_EINVAL, "%s: range past the address space", what);
    while (off < end) {
        ssize_t r = pread(fd, buf + off, end - off, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return set_error(err, INFER_EIO, "%s: read failed: %s", what, strerror(errno));
        if (r == 0) return set_error(err, INFER_EIO, "%s: file shrank while being read", what);
        off += (size_t)r;
    }
    return INFER_OK;
}

infer_status infer_read_file(const char *path, size_t max, uint8_t **buf, size_t *size, infer_error *err) {
    *buf = NULL;
    *size = 0;
    int fd;
    struct stat st;
    infer_status s = infer_open_regular(path, max, &fd, &st, err);
    if (s != INFER_OK) return s;
    const size_t n = (size_t)st.st_size;
    uint8_t *p = infer_malloc(n ? n : 1);
    if (!p) s = set_error(err, INFER_ENOMEM, "out of memory (%zu bytes)", n);
    else s = infer_pread_all(fd, p, 0, n, "file", err);
    close(fd);
    if (s != INFER_OK) {
        infer_free(p);
        return s;
    }
    *buf = p;
    *size = n;
    return INFER_OK;
}
