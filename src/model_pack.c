/*
 * model_pack.c - a model's quantized matmul weights in the CPU kernels'
 * repacked layout (kernels/dispatch.h: packed_size, pack), made once per
 * model by the first CPU context and shared by all of them.
 *
 * Float matrices (F32, F16, BF16) of a mapped model are copied as they are
 * into the same memory (huge pages; see plain_size), the rest as for the
 * repacked ones.
 *
 * Memory: the repacked copy replaces the file's rows rather than adding to
 * them. Each tensor's whole pages are dropped from this process
 * (MADV_DONTNEED) right after it is repacked, so the resident size stays
 * about one model:
 *  - a mapped model (the read-only, private file mapping): the file and
 *    the page cache are untouched, and a later read of those rows faults
 *    them back in from the file;
 *  - a model read into memory (--no-mmap; gguf.c's HEAP, which keeps the
 *    file open): the pages are released and read as zeros, so the ranges
 *    are recorded, and anyone who will read the file's layout of them
 *    first calls model_file_layout, which reads them back from the file
 *    and stops further drops. That is a Vulkan context uploading the
 *    weights, or a CPU context at another kernel level (model_packed
 *    does it). The token embedding is not dropped there, since every
 *    token reads rows of it (get_rows) when the output matrix is tied to it.
 * Models in the caller's memory (infer_model_load_memory) keep the file's
 * layout: their rows cannot be dropped, and a second copy would double them.
 *
 * Lifetime and threads: the state lives in m->pack, allocated with the
 * model and freed with it. The first context's thread pool does the work,
 * a tensor per thread at a time (pack_part), while that context holds the
 * mutex. The mutex makes make-once-then-read safe for
 * contexts created on several threads, and a context only reads the
 * pointers after taking the mutex once. The dropped ranges are written
 * back under the same mutex. INFER_REPACK=0 in the environment turns
 * repacking off (for comparisons).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf_internal.h"
#include "model.h"
#include "pool.h"
#include "util.h"

struct dropped_range {
    size_t off, len;
};

struct model_pack {
    pthread_mutex_t lock;
    int done;        /* made (or found not to apply) */
    infer_isa isa;   /* the kernel level the layout is for */
    uint8_t *mem;    /* all repacked tensors */
    size_t size;
    const void **at; /* [n_tensors]: repacked tensor by file index, or NULL */
    uint8_t *plain;  /* [n_tensors]: 1 where at[] is a copy in the file's layout */
    /* A model read into memory: the page ranges dropped from it, [off, off
     * + len) of the file, to read back before anyone reads them
     * (model_file_layout); keep: the file's layout is wanted, drop no more. */
    struct dropped_range *dropped; /* [cap_dropped]: one per tensor at most */
    size_t n_dropped, cap_dropped;
    int keep;
};

infer_status model_pack_new(model_pack **out, infer_error *err) {
    model_pack *p = infer_calloc(1, sizeof *p);
    if (!p) return set_error(err, INFER_ENOMEM, "out of memory");
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        infer_free(p);
        return set_error(err, INFER_ENOMEM, "cannot create a mutex");
    }
    *out = p;
    return INFER_OK;
}

void model_pack_free(model_pack *p) {
    if (!p) return;
    infer_unmap(p->mem, p->size);
    infer_free((void *)p->at);
    infer_free(p->plain);
    infer_free(p->dropped);
    pthread_mutex_destroy(&p->lock);
    infer_free(p);
}

/* Drop [q, q + n)'s whole pages of the file's data from this process: of
 * the mapping (read back from the file on the next touch) or of the memory
 * it was read into (zeros until model_file_layout), whose range goes to
 * *rec, its len 0 when there is none. rec NULL: a model read into memory
 * keeps these pages (see make_packed). */
static void drop_pages(const infer_model *m, const void *q, size_t n, struct dropped_range *rec) {
    const long pg = sysconf(_SC_PAGESIZE);
    const infer_gguf *g = m->gguf;
    if (rec) rec->len = 0;
    if (pg <= 0) return;
    uintptr_t a = (uintptr_t)q, e = a + n;
    a = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    e &= ~((uintptr_t)pg - 1);
    if (e <= a) return;
    if (g->backing == GGUF_HEAP) {
        if (!rec) return;
        rec->off = (size_t)(a - (uintptr_t)g->data);
        rec->len = (size_t)(e - a);
    }
    (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Read every dropped range back (the mutex held); from now on the file's
 * layout stays whole. A range read back is struck off, so a failure can
 * be retried. */
static infer_status restore_locked(const infer_model *m, model_pack *p, infer_error *err) {
    p->keep = 1;
    while (p->n_dropped > 0) {
        const size_t k = p->n_dropped - 1;
        infer_status s = gguf_read_back(m->gguf, p->dropped[k].off, p->dropped[k].len, err);
        if (s != INFER_OK) return s;
        p->n_dropped = k;
    }
    return INFER_OK;
}

infer_status model_file_layout(const infer_model *m, infer_error *err) {
    model_pack *p = m->pack;
    if (!p) return INFER_OK;
    pthread_mutex_lock(&p->lock);
    infer_status s = restore_locked(m, p, err);
    pthread_mutex_unlock(&p->lock);
    return s;
}

static int repack_wanted(const infer_model *m, const kernel_table *kt) {
    const char *env = getenv("INFER_REPACK");
    if (env && strcmp(env, "0") == 0) return 0;
    const infer_gguf *g = m->gguf;
    return kt->packed_size && kt->pack && kt->matmul_packed && kt->packed_rows > 0 && !m->vocab_only &&
           (g->backing == GGUF_MMAP || (g->backing == GGUF_HEAP && g->fd >= 0));
}

/* The tensor index of matmul weight w, or -1 when it has no rows to pack. */
static int64_t weight_tensor(const weight *w, size_t n_tensors) {
    return w->data && w->index >= 0 && (size_t)w->index < n_tensors ? w->index : -1;
}

/* The bytes of w's copy in the file's layout: a float matrix of a mapped
 * model (the kernels read those rows as they are), else 0. The copy lives
 * in huge pages where the mapping has the page cache's 4 KB ones: TinyLlama
 * F16, tg64, 2 threads, Intel Xeon, alternating builds: 13.5-13.6 t/s from
 * the mapping, 14.8 from the copy. Making it costs ~0.5 s more at the first
 * context for the 2.05 GiB model. A model read into memory is in huge
 * pages already. */
static size_t plain_size(const infer_model *m, const weight *w) {
    uint64_t n = 0;
    const int flt = w->type == INFER_TYPE_F32 || w->type == INFER_TYPE_F16 || w->type == INFER_TYPE_BF16;
    if (!flt || m->gguf->backing != GGUF_MMAP || w->rows <= 0 || ck_mul((uint64_t)w->rows, w->row_bytes, &n) ||
        n > SIZE_MAX)
        return 0;
    return (size_t)n;
}

/* One tensor to repack or copy: the first weight that reads it, its place
 * in p->mem, and where its dropped range is recorded (a model read into
 * memory; NULL: its pages stay). */
typedef struct {
    const weight *w;
    size_t off;
    int plain;
    struct dropped_range *rec;
} pack_item;

typedef struct {
    const infer_model *m;
    const kernel_table *kt;
    uint8_t *mem;
    const pack_item *items;
    size_t n_items;
    _Atomic size_t next; /* the next item to take */
} pack_job;

/* The threads take tensors one at a time: each is written by one thread,
 * the same bytes whichever, and its file pages are dropped as soon as it
 * is done, so the resident size stays about one model at any thread
 * count. */
static void pack_part(void *arg, int ith, int nth, int self) {
    pack_job *j = arg;
    size_t i;
    while ((i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->n_items) {
        const pack_item *it = &j->items[i];
        const weight *w = it->w;
        int64_t rows = w->rows / j->kt->packed_rows * j->kt->packed_rows;
        if (it->plain) {
            rows = w->rows; /* rows * row_bytes: plain_size, checked when it was sized */
            memcpy(j->mem + it->off, w->data, (size_t)rows * w->row_bytes);
        } else {
            j->kt->pack(w->type, w->data, w->row_bytes, w->rows, w->cols, j->mem + it->off);
        }
        drop_pages(j->m, w->data, (size_t)rows * w->row_bytes, it->rec);
    }
}

/* Repack every matmul weight the kernel level repacks, and copy the float
 * ones of a mapped model as they are (plain_size), into one mapping, each
 * tensor once however many weights share it (tied embeddings), on pl's
 * threads: offs holds tensor i's place in p->mem (SIZE_MAX: neither), p->at
 * its rows once written. */
static infer_status make_packed(const infer_model *m, const kernel_table *kt, model_pack *p, pool *pl,
                                infer_error *err) {
    const size_t n_tensors = (size_t)infer_gguf_tensor_count(m->gguf);
    const void **at = infer_calloc(n_tensors, sizeof *at);
    uint8_t *plain = infer_calloc(n_tensors, 1);
    size_t *offs = infer_malloc_array(n_tensors, sizeof *offs);
    pack_item *items = infer_malloc_array(n_tensors, sizeof *items);
    infer_status s = INFER_OK;
    if (!at || !plain || !offs || !items) {
        s = set_error(err, INFER_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t t = 0; t < n_tensors; t++) offs[t] = SIZE_MAX;
    size_t total = 0;
    for (size_t i = 0; i < model_n_matrices(m); i++) {
        const weight *w = model_matrix(m, i);
        const int64_t ti = weight_tensor(w, n_tensors);
        if (ti < 0 || offs[ti] != SIZE_MAX) continue;
        size_t sz = kt->packed_size(w->type, w->rows, w->cols);
        if (sz == 0 && (sz = plain_size(m, w)) > 0) plain[ti] = 1;
        if (sz == 0) continue;
        offs[ti] = total;
        uint64_t t = 0;
        if (ck_add(total, sz, &total) || ck_align_up((uint64_t)total, 64, &t) || t > SIZE_MAX) {
            s = set_error(err, INFER_ENOMEM, "repacked weights overflow the address space");
            goto out;
        }
        total = (size_t)t;
    }
    if (total > 0 && m->gguf->backing == GGUF_HEAP && !p->keep && !p->dropped) {
        p->dropped = infer_malloc_array(n_tensors, sizeof *p->dropped);
        if (!p->dropped) {
            s = set_error(err, INFER_ENOMEM, "out of memory");
            goto out;
        }
        p->cap_dropped = n_tensors;
    }
    if (total > 0) {
        p->mem = infer_map(total);
        if (!p->mem) {
            s = set_error(err, INFER_ENOMEM, "out of memory for %zu MiB of repacked weights", total >> 20);
            goto out;
        }
        p->size = total;
    }
    /* The tensors in matrix order, once each; a model read into memory
     * records each dropped range in its own slot of p->dropped (never past
     * the array; the token embedding kept, see the top). */
    const size_t first_slot = p->n_dropped;
    size_t n_items = 0, n_slots = 0;
    for (size_t i = 0; i < model_n_matrices(m); i++) {
        const weight *w = model_matrix(m, i);
        const int64_t ti = weight_tensor(w, n_tensors);
        if (ti < 0 || offs[ti] == SIZE_MAX || at[ti]) continue;
        pack_item *it = &items[n_items++];
        *it = (pack_item){.w = w, .off = offs[ti], .plain = plain[ti], .rec = NULL};
        if (m->gguf->backing == GGUF_HEAP && !p->keep && ti != m->tok_embd.index &&
            first_slot + n_slots < p->cap_dropped)
            it->rec = &p->dropped[first_slot + n_slots++];
        at[ti] = p->mem + offs[ti]; /* written by pool_run below, read by no one before it returns */
    }
    pack_job job = {.m = m, .kt = kt, .mem = p->mem, .items = items, .n_items = n_items}; /* next: 0 */
    if (n_items > 0) pool_run(pl, pack_part, &job);
    /* The recorded ranges in tensor order, the empty ones left out. */
    for (size_t k = 0; k < n_slots; k++)
        if (p->dropped[first_slot + k].len > 0) p->dropped[p->n_dropped++] = p->dropped[first_slot + k];
    p->at = at;
    p->plain = plain;
    at = NULL;
    plain = NULL;
out:
    infer_free((void *)at);
    infer_free(plain);
    infer_free(offs);
    infer_free(items);
    return s;
}

infer_status model_packed(const infer_model *m, const kernel_table *kt, pool *pl, model_pack_view *out,
                          infer_error *err) {
    model_pack *p = m->pack;
    infer_status s = INFER_OK;
    *out = (model_pack_view){NULL, NULL};
    if (!p) return INFER_OK;
    /* A context on the file's layout: read back what an earlier one dropped */
    if (!kt || !repack_wanted(m, kt)) return model_file_layout(m, err);
    pthread_mutex_lock(&p->lock);
    if (!p->done) {
        s = make_packed(m, kt, p, pl, err);
        if (s == INFER_OK) {
            p->done = 1;
            p->isa = kt->isa;
        }
    }
    if (s == INFER_OK && p->isa == kt->isa) *out = (model_pack_view){p->at, p->plain};
    else if (s == INFER_OK) s = restore_locked(m, p, err); /* another level: it reads the file's layout */
    pthread_mutex_unlock(&p->lock);
    return s;
}
