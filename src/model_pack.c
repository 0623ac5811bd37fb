/*
 * model_pack.c - a model's quantized matmul weights in the CPU kernels'
 * repacked layout (kernels/dispatch.h: packed_size, pack), made once per
 * model by the first CPU context and shared by all of them.
 *
 * Memory: the repacked copy replaces the mapped rows rather than adding to
 * them. Each tensor's pages are dropped from this process (MADV_DONTNEED
 * on the read-only file mapping: the file and the page cache are
 * untouched; a later read, e.g. by a Vulkan context uploading the same
 * model, faults them back in) right after it is repacked, so the resident
 * size stays about one model. Models read into memory (--no-mmap,
 * infer_model_load_memory) keep the file's layout: their rows cannot be
 * dropped, and a second copy would double them.
 *
 * Lifetime and threads: the state lives in m->pack, allocated with the
 * model and freed with it; the mutex makes make-once-then-read safe for
 * contexts created on several threads, and a context only reads the
 * pointers after taking the mutex once. INFER_REPACK=0 in the environment
 * turns repacking off (for comparisons).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf_internal.h"
#include "model.h"
#include "util.h"

struct model_pack {
    pthread_mutex_t lock;
    int done;        /* made (or found not to apply) */
    infer_isa isa;   /* the kernel level the layout is for */
    uint8_t *mem;    /* all repacked tensors */
    size_t size;
    const void **at; /* [n_tensors]: repacked tensor by file index, or NULL */
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
    pthread_mutex_destroy(&p->lock);
    infer_free(p);
}

/* Drop [p, p + n)'s whole pages of the file mapping from this process. */
static void drop_pages(const void *p, size_t n) {
    const long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = (uintptr_t)p, e = a + n;
    a = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    e &= ~((uintptr_t)pg - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

static int repack_wanted(const infer_model *m, const kernel_table *kt) {
    const char *env = getenv("INFER_REPACK");
    if (env && strcmp(env, "0") == 0) return 0;
    return kt->packed_size && kt->pack && kt->matmul_packed && kt->packed_rows > 0 && !m->vocab_only &&
           m->gguf->backing == GGUF_MMAP;
}

/* The tensor index of matmul weight w, or -1 when it has no rows to pack. */
static int64_t weight_tensor(const weight *w, size_t n_tensors) {
    return w->data && w->index >= 0 && (size_t)w->index < n_tensors ? w->index : -1;
}

/* Repack every matmul weight the kernel level repacks into one mapping,
 * each tensor once however many weights share it (tied embeddings): offs
 * holds tensor i's place in p->mem (SIZE_MAX: not repacked), p->at its
 * repacked rows once written. */
static infer_status make_packed(const infer_model *m, const kernel_table *kt, model_pack *p, infer_error *err) {
    const size_t n_tensors = (size_t)infer_gguf_tensor_count(m->gguf);
    const void **at = infer_calloc(n_tensors, sizeof *at);
    size_t *offs = infer_malloc_array(n_tensors, sizeof *offs);
    infer_status s = INFER_OK;
    if (!at || !offs) {
        s = set_error(err, INFER_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t t = 0; t < n_tensors; t++) offs[t] = SIZE_MAX;
    size_t total = 0;
    for (size_t i = 0; i < model_n_matrices(m); i++) {
        const weight *w = model_matrix(m, i);
        const int64_t ti = weight_tensor(w, n_tensors);
        if (ti < 0 || offs[ti] != SIZE_MAX) continue;
        const size_t sz = kt->packed_size(w->type, w->rows, w->cols);
        if (sz == 0) continue;
        offs[ti] = total;
        uint64_t t = 0;
        if (ck_add(total, sz, &total) || ck_align_up((uint64_t)total, 64, &t) || t > SIZE_MAX) {
            s = set_error(err, INFER_ENOMEM, "repacked weights overflow the address space");
            goto out;
        }
        total = (size_t)t;
    }
    if (total > 0) {
        p->mem = infer_map(total);
        if (!p->mem) {
            s = set_error(err, INFER_ENOMEM, "out of memory for %zu MiB of repacked weights", total >> 20);
            goto out;
        }
        p->size = total;
    }
    for (size_t i = 0; i < model_n_matrices(m); i++) {
        const weight *w = model_matrix(m, i);
        const int64_t ti = weight_tensor(w, n_tensors);
        if (ti < 0 || offs[ti] == SIZE_MAX || at[ti]) continue;
        const int64_t rows = w->rows / kt->packed_rows * kt->packed_rows;
        kt->pack(w->type, w->data, w->row_bytes, w->rows, w->cols, p->mem + offs[ti]);
        at[ti] = p->mem + offs[ti];
        drop_pages(w->data, (size_t)rows * w->row_bytes);
    }
    p->at = at;
    at = NULL;
out:
    infer_free((void *)at);
    infer_free(offs);
    return s;
}

infer_status model_packed(const infer_model *m, const kernel_table *kt, const void *const **out, infer_error *err) {
    model_pack *p = m->pack;
    infer_status s = INFER_OK;
    *out = NULL;
    if (!p || !repack_wanted(m, kt)) return INFER_OK;
    pthread_mutex_lock(&p->lock);
    if (!p->done) {
        s = make_packed(m, kt, p, err);
        if (s == INFER_OK) {
            p->done = 1;
            p->isa = kt->isa;
        }
    }
    if (s == INFER_OK && p->isa == kt->isa) *out = p->at;
    pthread_mutex_unlock(&p->lock);
    return s;
}
