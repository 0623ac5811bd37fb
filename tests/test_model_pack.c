/*
 * test_model_pack.c - a model read into memory (use_mmap = 0, --no-mmap)
 * gets the CPU kernels' repacked weights as a mapped one does: the same
 * logits bit for bit, the file's rows they replace released from memory
 * (the token embedding kept when the output is tied to it), and those rows
 * read back from the file, byte for byte, for whoever reads the file's
 * layout (model_file_layout: a Vulkan upload); refused, and retried later,
 * when the file changed in between. Float matrices of a mapped model are
 * copied as they are (into huge pages): the same logits, the copy equal to
 * the file's rows. Synthetic models: these always run.
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_internal.h"

#include "infer.h"
#include "model.h"
#include "pool.h"
#include "synth.h"
#include "testutil.h"

#define NV 300 /* synth vocabulary */

/* A model of n_embd and n_ff whose matrices span whole pages (Q8_0
 * 256 x 256: 17 pages). */
static void write_typed(char *path, int tied, uint32_t wtype, uint32_t n_embd, uint32_t n_ff) {
    synth_params p = synth_default_params();
    p.n_embd = n_embd;
    p.n_ff = n_ff;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.wtype = wtype;
    p.tied = tied;
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    infer_error err = {0};
    cr_assert_eq(synth_model_file(&p, path, &err), INFER_OK, "%s", err.message);
}

static void write_model(char *path, int tied) { write_typed(path, tied, INFER_TYPE_Q8_0, 256, 512); }

static infer_model *load(const char *path, int use_mmap) {
    infer_model_params mp = infer_model_default_params();
    mp.use_mmap = use_mmap;
    infer_model *m = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_model_load(path, &mp, &m, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(m->gguf->backing, use_mmap ? GGUF_MMAP : GGUF_HEAP);
    return m;
}

/* A 5-token prompt (batch kernels), then 2 single tokens (generation
 * kernels): the 3 logit rows into out[3 * NV]. */
static void logits_of(infer_context *c, float *out) {
    static const int32_t prompt[5] = {1, 260, 270, 280, 290};
    infer_error err = {0};
    cr_assert_eq(infer_context_reset(c), INFER_OK);
    cr_assert_eq(infer_decode(c, prompt, 5, 0, &err), INFER_OK, "%s", err.message);
    memcpy(out, infer_logits(c), NV * sizeof(float));
    for (int i = 0; i < 2; i++) {
        const int32_t tok = 261 + 7 * i;
        cr_assert_eq(infer_decode(c, &tok, 1, 0, &err), INFER_OK, "%s", err.message);
        memcpy(out + (size_t)(i + 1) * NV, infer_logits(c), NV * sizeof(float));
    }
}

static infer_context *context(infer_model *m) {
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    infer_context *c = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_context_new(m, &cp, &c, &err), INFER_OK, "%s", err.message);
    return c;
}

static void model_logits(infer_model *m, float *out) {
    infer_context *c = context(m);
    logits_of(c, out);
    infer_context_free(c);
}

/* The logits of the model at path, mapped, on a context of its own. */
static void mapped_logits(const char *path, float *out) {
    infer_model *m = load(path, 1);
    model_logits(m, out);
    infer_model_release(m);
}

/* Resident pages among the whole pages inside [p, p + n), and how many. */
static size_t resident(const void *p, size_t n, size_t *whole) {
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), e = ((uintptr_t)p + n) & ~(pg - 1);
    *whole = e > a ? (size_t)((e - a) / pg) : 0;
    if (!*whole) return 0;
    unsigned char v[4096];
    cr_assert_leq(*whole, sizeof v);
    cr_assert_eq(mincore((void *)a, e - a, v), 0);
    size_t r = 0;
    for (size_t i = 0; i < *whole; i++) r += v[i] & 1;
    return r;
}

/* Resident kB of this process's mapping that holds p (/proc/self/smaps). */
static long mapping_rss_kb(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    int in = 0;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    cr_assert_geq(kb, 0, "no mapping holds %p", p);
    return kb;
}

static void skip_unless_repacking(void) {
    const kernel_table *kt = kernels_get();
    if (!kt->packed_size) cr_skip_test("the %s kernels keep the file's layout: nothing is repacked", kt->name);
}

/* Dropped and read back: every matrix's whole pages of its repacked rows
 * are out of memory after the first context, and back, equal to the file,
 * after model_file_layout; the logits never change. */
Test(model_pack, read_into_memory_repacks_releases_and_reads_back) {
    skip_unless_repacking();
    char path[] = "/tmp/infer-pack-XXXXXX";
    write_model(path, 0);
    float want[3 * NV], got[3 * NV];
    mapped_logits(path, want);

    infer_model *m = load(path, 0);
    const int64_t pr = kernels_get()->packed_rows;
    infer_context *c = context(m);
    logits_of(c, got);
    cr_assert(!memcmp(want, got, sizeof want), "read into memory: logits differ from the mapped model's");
    size_t n_dropped = 0;
    for (size_t i = 0; i < model_n_matrices(m); i++) {
        const weight *w = model_matrix(m, i);
        size_t whole;
        const size_t r = resident(w->data, (size_t)(w->rows / pr * pr) * w->row_bytes, &whole);
        cr_assert_gt(whole, 0, "matrix %zu: no whole page (the test's shapes are too small)", i);
        cr_assert_eq(r, 0, "matrix %zu: %zu of %zu pages still resident after repacking", i, r, whole);
        n_dropped += whole;
    }
    size_t whole;
    cr_assert_eq(resident(m->tok_embd.data, (size_t)m->tok_embd.rows * m->tok_embd.row_bytes, &whole), whole,
                 "the token embedding (not a matmul weight) was dropped");

    size_t fsize = 0;
    void *file = read_file(path, &fsize);
    cr_assert_not_null(file);
    cr_assert_eq(fsize, m->gguf->size);
    cr_assert(memcmp(file, m->gguf->data, fsize) != 0, "nothing reads as dropped");
    infer_error err = {0};
    cr_assert_eq(model_file_layout(m, &err), INFER_OK, "%s", err.message);
    cr_assert(!memcmp(file, m->gguf->data, fsize), "the rows read back differ from the file");
    cr_assert_eq(model_file_layout(m, &err), INFER_OK, "%s", err.message); /* again: nothing left to do */

    /* The context made before, and one made after (no drops any more). */
    logits_of(c, got);
    cr_assert(!memcmp(want, got, sizeof want));
    infer_context_free(c);
    model_logits(m, got);
    cr_assert(!memcmp(want, got, sizeof want));
    cr_assert(!memcmp(file, m->gguf->data, fsize), "pages dropped after model_file_layout");
    cr_assert_gt(n_dropped, 0);
    infer_model_release(m);
    free(file);
    unlink(path);
    LEAK_CHECK();
}

/* Tied output: the token embedding is a repacked matrix, and every token
 * reads rows of it, so a model read into memory keeps it. */
Test(model_pack, read_into_memory_keeps_a_tied_token_embedding) {
    skip_unless_repacking();
    char path[] = "/tmp/infer-pack-XXXXXX";
    write_model(path, 1);
    float want[3 * NV], got[3 * NV];
    mapped_logits(path, want);
    infer_model *m = load(path, 0);
    cr_assert_eq(m->output.index, m->tok_embd.index, "the model is not tied");
    model_logits(m, got);
    cr_assert(!memcmp(want, got, sizeof want), "tied, read into memory: logits differ from the mapped model's");
    size_t whole;
    cr_assert_eq(resident(m->tok_embd.data, (size_t)m->tok_embd.rows * m->tok_embd.row_bytes, &whole), whole);
    cr_assert_gt(whole, 0);
    infer_model_release(m);
    unlink(path);
    LEAK_CHECK();
}

/* The file changed after it was read (its time, then its size): reading
 * back is refused with a message, the model's contexts run on unharmed,
 * and once the file is as it was (bytes and time) the read-back, retried,
 * succeeds. */
Test(model_pack, read_back_refused_while_the_file_is_changed) {
    skip_unless_repacking();
    char path[] = "/tmp/infer-pack-XXXXXX";
    write_model(path, 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    size_t fsize = 0;
    void *file = read_file(path, &fsize);
    cr_assert_not_null(file);
    float want[3 * NV], got[3 * NV];
    infer_model *m = load(path, 0);
    infer_context *c = context(m);
    logits_of(c, want);

    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 10;
    cr_assert_eq(utimensat(AT_FDCWD, path, times, 0), 0);
    infer_error err = {0};
    cr_assert_eq(model_file_layout(m, &err), INFER_EIO);
    cr_assert(strstr(err.message, "changed"), "%s", err.message);

    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    cr_assert_eq(model_file_layout(m, &err), INFER_EIO);
    cr_assert(strstr(err.message, "changed"), "%s", err.message);
    logits_of(c, got);
    cr_assert(!memcmp(want, got, sizeof want), "a refused read-back changed the context's results");

    int fd = open(path, O_WRONLY); /* the same file: its bytes, then its time, back */
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, file, fsize, 0), (ssize_t)fsize);
    close(fd);
    times[1] = st.st_mtim;
    cr_assert_eq(utimensat(AT_FDCWD, path, times, 0), 0);
    cr_assert_eq(model_file_layout(m, &err), INFER_OK, "%s", err.message);
    cr_assert(!memcmp(file, m->gguf->data, fsize), "the rows read back differ from the file");
    logits_of(c, got);
    cr_assert(!memcmp(want, got, sizeof want));
    infer_context_free(c);
    infer_model_release(m);
    free(file);
    unlink(path);
    LEAK_CHECK();
}

/* Float matrices (F32, F16, BF16) of a mapped model: a CPU context reads a
 * copy of each in memory of the pack (plain), equal to the file's rows, and
 * gets the logits of the same model with INFER_REPACK=0 (the file's rows
 * read through the mapping) bit for bit, prompt (F32: OpenBLAS) and
 * single tokens alike. Read into memory, nothing is copied. */
Test(model_pack, mapped_float_matrices_copied_as_they_are) {
    skip_unless_repacking();
    static const uint32_t types[] = {INFER_TYPE_F32, INFER_TYPE_F16, INFER_TYPE_BF16};
    for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++) {
        char path[] = "/tmp/infer-pack-XXXXXX";
        write_typed(path, 0, types[ty], 512, 2048);
        float want[3 * NV], got[3 * NV];
        setenv("INFER_REPACK", "0", 1);
        mapped_logits(path, want);
        unsetenv("INFER_REPACK");

        infer_model *m = load(path, 1);
        infer_context *c = context(m);
        /* Decoding reads the copies: of the mapping, only the token
         * embedding's rows come back, with whatever the page cache maps
         * around them (up to 2 MB folios), far less than half of the
         * matrices (15 MB in BF16), which reading them there would map. */
        long mat_kb = 0;
        for (size_t i = 0; i < model_n_matrices(m); i++)
            mat_kb += (long)((size_t)model_matrix(m, i)->rows * model_matrix(m, i)->row_bytes >> 10);
        const long before = mapping_rss_kb(m->gguf->data);
        logits_of(c, got);
        const long after = mapping_rss_kb(m->gguf->data);
        cr_assert_lt(after - before, mat_kb / 2, "type %u: decoding mapped %ld of the matrices' %ld kB back", types[ty],
                     after - before, mat_kb);
        cr_assert(!memcmp(want, got, sizeof want), "type %u: logits from the copies differ from the file's rows'",
                  types[ty]);
        model_pack_view v;
        infer_error err = {0};
        cr_assert_eq(model_packed(m, kernels_get(), NULL, &v, &err), INFER_OK, "%s", err.message);
        cr_assert_not_null(v.at);
        for (size_t i = 0; i < model_n_matrices(m); i++) {
            const weight *w = model_matrix(m, i);
            cr_assert(v.at[w->index] && v.plain[w->index], "type %u: matrix %zu not copied", types[ty], i);
            cr_assert(v.at[w->index] != w->data);
            cr_assert(!memcmp(v.at[w->index], w->data, (size_t)w->rows * w->row_bytes),
                      "type %u: matrix %zu's copy differs from the file", types[ty], i);
        }
        cr_assert_null(v.at[m->tok_embd.index], "the token embedding (not a matmul weight) was copied");
        infer_context_free(c);
        infer_model_release(m);

        m = load(path, 0);
        model_logits(m, got);
        cr_assert(!memcmp(want, got, sizeof want));
        cr_assert_eq(model_packed(m, kernels_get(), NULL, &v, &err), INFER_OK, "%s", err.message);
        for (size_t i = 0; v.at && i < model_n_matrices(m); i++)
            cr_assert_null(v.at[model_matrix(m, i)->index], "read into memory: a float matrix was copied");
        infer_model_release(m);
        unlink(path);
    }
    LEAK_CHECK();
}

/* A job with nothing to do: run once, it leaves the pool's workers spinning. */
static void nothing(void *arg, int ith, int nth, int self) {}

/* The threads share the repacking a tensor at a time: a pool of 3 writes
 * the same bytes as the calling thread alone, for a quantized model mapped
 * and read into memory (where every range it dropped is recorded: the
 * file's bytes all read back) and for a mapped float model's copies. */
Test(model_pack, threads_pack_the_same_bytes) {
    skip_unless_repacking();
    const kernel_table *kt = kernels_get();
    const struct {
        uint32_t type;
        int use_mmap;
    } cases[] = {{INFER_TYPE_Q4_0, 1}, {INFER_TYPE_Q4_0, 0}, {INFER_TYPE_Q6_K, 1}, {INFER_TYPE_F16, 1}};
    pool *pl = NULL;
    infer_error err = {0};
    cr_assert_eq(pool_new(3, NULL, &pl, &err), INFER_OK, "%s", err.message);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        char path[] = "/tmp/infer-pack-XXXXXX";
        write_typed(path, 0, cases[ci].type, 512, 1024);
        infer_model *one = load(path, cases[ci].use_mmap), *many = load(path, cases[ci].use_mmap);
        model_pack_view v1, vn;
        cr_assert_eq(model_packed(one, kt, NULL, &v1, &err), INFER_OK, "%s", err.message);
        pool_run(pl, nothing, NULL); /* the workers spin now: they take their share of the tensors */
        cr_assert_eq(model_packed(many, kt, pl, &vn, &err), INFER_OK, "%s", err.message);
        cr_assert(v1.at && vn.at, "case %zu: nothing repacked", ci);
        size_t n_done = 0;
        for (size_t i = 0; i < model_n_matrices(one); i++) {
            const weight *w = model_matrix(one, i);
            if (!v1.at[w->index]) continue;
            cr_assert_not_null(vn.at[w->index], "case %zu: matrix %zu left out by the pool", ci, i);
            cr_assert_eq(v1.plain[w->index], vn.plain[w->index]);
            const size_t n = v1.plain[w->index] ? (size_t)w->rows * w->row_bytes
                                                 : kt->packed_size(w->type, w->rows, w->cols);
            cr_assert(n > 0 && !memcmp(v1.at[w->index], vn.at[w->index], n),
                      "case %zu: matrix %zu packed differently by 3 threads", ci, i);
            n_done++;
        }
        cr_assert_gt(n_done, 0);
        if (!cases[ci].use_mmap) { /* every dropped range recorded: the file's bytes all come back */
            const int64_t pr = kt->packed_rows;
            for (size_t i = 0; i < model_n_matrices(many); i++) {
                const weight *w = model_matrix(many, i);
                size_t whole;
                cr_assert_eq(resident(w->data, (size_t)(w->rows / pr * pr) * w->row_bytes, &whole), 0,
                             "case %zu: matrix %zu not dropped", ci, i);
            }
            cr_assert_eq(model_file_layout(many, &err), INFER_OK, "%s", err.message);
            size_t fsize = 0;
            void *file = read_file(path, &fsize);
            cr_assert(file && fsize == many->gguf->size && !memcmp(file, many->gguf->data, fsize),
                      "case %zu: the rows read back differ from the file", ci);
            free(file);
        }
        infer_model_release(one);
        infer_model_release(many);
        unlink(path);
    }
    pool_free(pl);
    LEAK_CHECK();
}

/* A context that reads the file's layout (INFER_REPACK=0 here) on a model
 * read into memory whose first context repacked and dropped its rows: it
 * reads them back first, and gets the logits of the file (it once read
 * the dropped pages as zeros). */
Test(model_pack, a_later_context_on_the_files_layout_reads_back_first) {
    skip_unless_repacking();
    char path[] = "/tmp/infer-pack-XXXXXX";
    write_model(path, 0);
    float want[3 * NV], got[3 * NV];
    setenv("INFER_REPACK", "0", 1);
    mapped_logits(path, want);
    unsetenv("INFER_REPACK");

    infer_model *m = load(path, 0);
    infer_context *c = context(m);
    logits_of(c, got); /* repacked: the same up to the kernels' order */
    size_t fsize = 0;
    void *file = read_file(path, &fsize);
    cr_assert_not_null(file);
    cr_assert(memcmp(file, m->gguf->data, fsize) != 0, "nothing reads as dropped");
    setenv("INFER_REPACK", "0", 1);
    infer_context *c2 = context(m);
    unsetenv("INFER_REPACK");
    cr_assert(!memcmp(file, m->gguf->data, fsize), "the rows were not read back");
    logits_of(c2, got);
    cr_assert(!memcmp(want, got, sizeof want), "the file's layout read with rows missing");
    infer_context_free(c2);
    infer_context_free(c);
    infer_model_release(m);
    free(file);
    unlink(path);
    LEAK_CHECK();
}

/* general.alignment 1 puts the tensors at odd offsets: the 1-D weights
 * (norms, qwen2's biases, read as floats) are copied to aligned memory for
 * every way of loading, and the caller's buffer may sit at an odd address
 * too. The logits agree bit for bit (the sanitizer run catches a
 * misaligned float read). */
Test(model_pack, tensors_at_odd_offsets_load_every_way) {
    static const char *const arch[] = {"llama", "qwen2"};
    for (int a = 0; a < 2; a++) {
        const uint32_t one = 1;
        void *buf = NULL;
        size_t size = 0;
        infer_error err = {0};
        for (uint32_t nv = NV;; nv++) { /* a vocabulary size that leaves the data at an odd offset */
            cr_assert_lt(nv, NV + 16);
            synth_params p = synth_default_params();
            p.arch = arch[a];
            p.n_vocab = nv; /* the compared logits are the first NV of each row */
            p.set_key = "general.alignment";
            p.set_type = INFER_GGUF_UINT32;
            p.set_value = &one;
            cr_assert_eq(synth_model(&p, &buf, &size, &err), INFER_OK, "%s", err.message);
            infer_gguf *g = NULL;
            cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_OK, "%s", err.message);
            const int odd = infer_gguf_data_offset(g) % 2 == 1;
            infer_gguf_close(g);
            if (odd) break;
            free(buf);
        }
        char path[] = "/tmp/infer-odd-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, buf, size), (ssize_t)size);
        close(fd);
        float want[3 * NV], got[3 * NV];
        mapped_logits(path, want);
        infer_model *m = load(path, 0);
        model_logits(m, got);
        infer_model_release(m);
        cr_assert(!memcmp(want, got, sizeof want), "%s read into memory", arch[a]);
        uint8_t *odd = malloc(size + 1);
        cr_assert_not_null(odd);
        memcpy(odd + 1, buf, size);
        cr_assert_eq(infer_model_load_memory(odd + 1, size, NULL, &m, &err), INFER_OK, "%s", err.message);
        model_logits(m, got);
        infer_model_release(m);
        cr_assert(!memcmp(want, got, sizeof want), "%s from memory at an odd address", arch[a]);
        free(odd);
        free(buf);
        unlink(path);
    }
    LEAK_CHECK();
}
