/*
 * infer_quantize.c - infer-quantize: convert a GGUF model's weights to a
 * quantized type, choosing per-tensor types the way llama.cpp's
 * llama-quantize does.
 *
 *   infer-quantize [options] IN.gguf [OUT.gguf] TYPE [NTHREADS]
 *     options: [--pure] [--output-tensor-type T] [--token-embedding-type T]
 *              [--leave-output-tensor] [--tensor-type PATTERN=T ...] [--tensor-type-file FILE]
 *              [--imatrix FILE] [--include-weights NAME ... | --exclude-weights NAME ...]
 *              [--override-kv KEY=TYPE:VALUE ...] [--allow-requantize] [-t N]
 *
 * What it reproduces of llama-quantize (src/llama-quant.cpp):
 *   - which tensors are quantized: 2-D (or more) tensors whose name ends in
 *     "weight", except norms and a few small special tensors; everything
 *     else (1-D norms, biases) is copied unchanged;
 *   - the mixture rules for the file type: output.weight (or token_embd when
 *     the embeddings are tied) in Q6_K, attn_v / ffn_down bumped on the
 *     layers use_more_bits() picks for Q4_K_M and Q5_K_M, the Q2_K,
 *     Q3_K_M, Q3_K_L and Q4_K_S bumps, ... (choose_type in quantize_rules.c); --pure
 *     turns the rules off; --output-tensor-type / --token-embedding-type
 *     name those two tensors' types before any rule (no fallback: a type
 *     that does not fit the rows is refused), --leave-output-tensor
 *     copies output.weight, and --tensor-type PATTERN=T gives T to the
 *     weights whose names the pattern matches (PCRE2, lowercased; the first
 *     match wins) in place of the rules, --pure or not, the fallback below
 *     applying to it as to the rules' types (a float TYPE ignores it);
 *   - the counters those rules use (i-th attn_v, i-th ffn_down) advance in
 *     llama.cpp's tensor order: tensors outside "blk.N." first, then by
 *     layer number, each group sorted by name, and the output is written in
 *     that order too (so a file can be the same as llama-quantize's, byte
 *     for byte);
 *   - the fallback for rows that are not a whole number of blocks
 *     (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16);
 *   - the command line (TYPE by name or number, OUT left out, NTHREADS);
 *   - the quantizers themselves (kernels/ref: byte-identical to llama.cpp's
 *     reference quantizers) and the metadata (quantize_meta.c): every key
 *     copied, then general.quantization_version = 2, general.file_type =
 *     the ftype, --override-kv's keys;
 *   - with --imatrix (llama-imatrix's legacy or GGUF file, tools/imatrix.c): each
 *     converted tensor with an entry of its name takes llama.cpp's
 *     importance-weighted quantizer (kernels/ref/quantize_imatrix.c), an
 *     entry of the wrong size is refused (but for token_embd), the
 *     has_imatrix rules apply (Q4_0 / Q5_0: the first eighth of ffn_down in
 *     Q4_1 / Q5_1), Q2_K_S is allowed (only with it), and the
 *     quantize.imatrix.* keys follow general.file_type;
 *     --include-weights / --exclude-weights filter the entries by name.
 *
 * The input is any GGUF file (validated by the reader before anything is
 * used); tensors to convert may be F32, F16, BF16 or a quantized type infer
 * can dequantize. The output is written one tensor at a time (memory: the
 * largest tensor, plus the input's pages the kernel maps in), then read back
 * and validated.
 *
 * Exit status: 0 ok, 1 usage, 2 input rejected, 3 conversion or write failed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imatrix.h"
#include "infer.h"
#include "quantize_meta.h"
#include "quantize_rules.h"
#include "ref/quants.h"
#include "util.h"

/* ---- tensors ------------------------------------------------------------------------------- */

/* Type t's bytes for n values, n a multiple of its block (checked). */
static int bytes_for(uint32_t t, uint64_t n, uint64_t *out) {
    return infer_type_row_bytes(t, n, out) != INFER_OK || *out > SIZE_MAX;
}

/* One thread's share of a tensor: rows [row0, row1), converted a chunk of
 * rows at a time through its own float scratch. */
typedef struct {
    const uint8_t *src;
    uint8_t *out;
    uint32_t from, to;
    uint64_t ncols, src_row, dst_row, chunk, row0, row1;
    const float *qw;      /* importance matrix entry (ncols per expert), or NULL */
    uint64_t rows_per_qw; /* rows of one expert (ne[1]); qw's n_qw blocks repeat */
    uint64_t n_qw;        /* experts (ne[2]) */
    infer_status st; /* INFER_OK, ENOMEM (scratch) or EUNSUPPORTED (type) */
} convert_job;

/* k rows from row r, dequantized into f: quantized in one call, or one
 * row at a time with the importance weights of the row's expert (the
 * weighted 32-value types weigh by the row's own mean square). */
static int quantize_rows(const convert_job *j, const float *f, uint64_t r, uint64_t k) {
    if (!j->qw) return infer_ref_quantize(j->to, f, j->out + r * j->dst_row, (int64_t)(k * j->ncols));
    for (uint64_t i = 0; i < k; i++) {
        const float *qw = j->qw + ((r + i) / j->rows_per_qw % j->n_qw) * j->ncols;
        if (infer_ref_quantize_imatrix(j->to, f + i * j->ncols, j->out + (r + i) * j->dst_row, (int64_t)j->ncols,
                                       qw) != 0)
            return -1;
    }
    return 0;
}

static void *convert_rows(void *arg) {
    convert_job *j = arg;
    float *f = infer_malloc_array((size_t)(j->chunk * j->ncols), sizeof *f);
    j->st = f ? INFER_OK : INFER_ENOMEM;
    for (uint64_t r = j->row0; r < j->row1 && j->st == INFER_OK; r += j->chunk) {
        const uint64_t k = j->row1 - r < j->chunk ? j->row1 - r : j->chunk;
        infer_ref_dequantize(j->from, j->src + r * j->src_row, f, (int64_t)(k * j->ncols));
        if (quantize_rows(j, f, r, k) != 0) j->st = INFER_EUNSUPPORTED;
    }
    infer_free(f);
    return NULL;
}

#define MAX_THREADS 256

/* Convert tensor t to type `to` into out (its exact size), rows split
 * among n_threads threads. Rows are independent, so the bytes do not
 * depend on the thread count. */
static infer_status convert_tensor(const infer_gguf_tensor *t, const char *name /* escaped */, uint32_t to,
                                   const float *qw, uint8_t *out, int n_threads, infer_error *err) {
    const uint32_t from = t->type;
    if (from != INFER_TYPE_F32 && from != INFER_TYPE_F16 && from != INFER_TYPE_BF16 &&
        !infer_ref_weight_type_supported(from))
        return set_error(err, INFER_EUNSUPPORTED, "%s: cannot convert a %s tensor", name, infer_type_name(from));
    const uint64_t ncols = t->ne[0], nrows = t->n_elements / ncols;
    uint64_t src_row, dst_row;
    if (bytes_for(from, ncols, &src_row) || bytes_for(to, ncols, &dst_row))
        return set_error(err, INFER_EFORMAT, "%s: rows of %llu values do not fit %s", name,
                         (unsigned long long)ncols, infer_type_name(to));
    /* rows per chunk: about 256K values, at least one row */
    uint64_t chunk = ncols >= (1u << 18) ? 1 : (1u << 18) / ncols, n_scratch;
    if (chunk > nrows) chunk = nrows;
    if (ck_mul(chunk, ncols, &n_scratch) || n_scratch > SIZE_MAX / sizeof(float))
        return set_error(err, INFER_EFORMAT, "%s: rows too long", name);
    /* no more threads than chunks */
    uint64_t n_chunks = (nrows + chunk - 1) / chunk;
    int nt = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    if ((uint64_t)nt > n_chunks) nt = (int)n_chunks;
    convert_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 0; i < nt; i++) {
        /* thread i: chunks [n_chunks*i/nt, n_chunks*(i+1)/nt) */
        const uint64_t c0 = n_chunks * (uint64_t)i / (uint64_t)nt, c1 = n_chunks * (uint64_t)(i + 1) / (uint64_t)nt;
        jobs[i] = (convert_job){.src = t->data, .out = out, .from = from, .to = to, .ncols = ncols,
                                .src_row = src_row, .dst_row = dst_row, .chunk = chunk,
                                .row0 = c0 * chunk, .row1 = c1 * chunk < nrows ? c1 * chunk : nrows,
                                .qw = qw, .rows_per_qw = t->ne[1], .n_qw = t->ne[2]}; /* >= 1: the reader's */
        if (i > 0) started[i] = pthread_create(&tid[i], NULL, convert_rows, &jobs[i]) == 0;
    }
    convert_rows(&jobs[0]);
    for (int i = 1; i < nt; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else convert_rows(&jobs[i]); /* no thread: do it here */
    }
    for (int i = 0; i < nt; i++) {
        if (jobs[i].st == INFER_ENOMEM)
            return set_error(err, INFER_ENOMEM, "%s: out of memory (%llu values of scratch)", name,
                             (unsigned long long)n_scratch);
        if (jobs[i].st != INFER_OK)
            return set_error(err, INFER_EUNSUPPORTED, "%s: cannot produce %s", name, infer_type_name(to));
    }
    return INFER_OK;
}

/* ---- the output file ---------------------------------------------------------------------- */

/* The output is streamed: the GGUF writer builds the header and metadata
 * (no tensors), then the tensor infos and each tensor's data follow, one
 * tensor in memory at a time, so that a 7B model needs no more memory than
 * its largest tensor. The result is re-read and validated at the end. */
typedef struct {
    FILE *f;
    const char *path;
    uint64_t pos; /* bytes written */
} out_file;

static infer_status out_put(out_file *o, const void *p, size_t n, infer_error *err) {
    if (n && fwrite(p, 1, n, o->f) != n) return set_error(err, INFER_EIO, "%s: write failed", o->path);
    o->pos += n;
    return INFER_OK;
}

static infer_status out_u32(out_file *o, uint32_t v, infer_error *err) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    return out_put(o, b, 4, err);
}

static infer_status out_u64(out_file *o, uint64_t v, infer_error *err) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return out_put(o, b, 8, err);
}

static infer_status out_pad(out_file *o, uint32_t alignment, infer_error *err) {
    static const uint8_t zeros[INFER_GGUF_MAX_ALIGNMENT];
    return out_put(o, zeros, (size_t)((alignment - o->pos % alignment) % alignment), err);
}

/* Header, metadata and tensor infos, the tensors in order (make_plan's).
 * Fills each plan entry's size. */
static infer_status write_header(out_file *o, const infer_gguf *g, plan_entry *plan, const uint64_t *order,
                                 const quant_meta *meta, infer_error *err) {
    const uint64_t n = infer_gguf_tensor_count(g);
    const uint32_t alignment = infer_gguf_alignment(g); /* general.alignment is copied */
    infer_gguf_writer *w = NULL;
    void *blob = NULL;
    size_t blob_size = 0;
    infer_status st = infer_gguf_writer_new(&w, err);
    if (st == INFER_OK) st = quant_meta_write(g, meta, w, err);
    if (st == INFER_OK || err->message[0] == '\0') {
        /* on a writer failure (sticky, no message yet) finish reports it */
        infer_status fs = infer_gguf_writer_finish(w, &blob, &blob_size, err);
        if (st == INFER_OK) st = fs;
    }
    infer_gguf_writer_free(w);
    if (st != INFER_OK) {
        infer_free(blob);
        return st;
    }
    /* "GGUF", version 3, u64 tensor count (0 here: patched), u64 kv count, kv */
    for (int i = 0; i < 8; i++) ((uint8_t *)blob)[8 + i] = (uint8_t)(n >> (8 * i));
    st = out_put(o, blob, blob_size, err);
    infer_free(blob);
    uint64_t off = 0;
    for (uint64_t k = 0; k < n && st == INFER_OK; k++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, order[k]);
        plan_entry *p = &plan[order[k]];
        if (bytes_for(p->type, t->n_elements, &p->size) || ck_align_up(off + p->size, alignment, &p->end))
            return set_error(err, INFER_EFORMAT, "%s: too large", p->shown);
        st = out_u64(o, t->name.len, err);
        if (st == INFER_OK) st = out_put(o, p->name, t->name.len, err);
        if (st == INFER_OK) st = out_u32(o, t->n_dims, err);
        for (uint32_t d = 0; d < t->n_dims && st == INFER_OK; d++) st = out_u64(o, t->ne[d], err);
        if (st == INFER_OK) st = out_u32(o, p->type, err);
        if (st == INFER_OK) st = out_u64(o, off, err);
        off = p->end;
    }
    if (st == INFER_OK) st = out_pad(o, alignment, err);
    return st;
}

/* Every tensor's data, in order (as write_header). */
static infer_status write_data(out_file *o, const infer_gguf *g, const plan_entry *plan, const uint64_t *order,
                               int n_threads, uint64_t *bytes_in, uint64_t *bytes_out, infer_error *err) {
    const uint64_t n = infer_gguf_tensor_count(g);
    const uint32_t alignment = infer_gguf_alignment(g);
    for (uint64_t k = 0; k < n; k++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, order[k]);
        const plan_entry *p = &plan[order[k]];
        printf("[%4llu/%4llu] %-36s %-5s -> %-5s %10.3f MiB -> %10.3f MiB\n", (unsigned long long)k + 1,
               (unsigned long long)n, p->shown, infer_type_name(t->type), infer_type_name(p->type),
               t->n_bytes / 1048576.0, p->size / 1048576.0);
        if (p->fell_back) {
            fflush(stdout);
            fprintf(stderr, "infer-quantize: %s: rows of %llu values are not whole %s blocks (%u): using %s%s\n",
                    p->shown, (unsigned long long)t->ne[0], infer_type_name(p->wanted),
                    infer_type_block_size(p->wanted), infer_type_name(p->type),
                    infer_type_block_size(p->wanted) == 256 ? " (as llama-quantize does)"
                                                            : " (llama-quantize refuses such a tensor)");
        }
        infer_status st;
        if (p->type == t->type) {
            st = out_put(o, t->data, (size_t)t->n_bytes, err);
        } else {
            uint8_t *buf = infer_malloc(p->size ? (size_t)p->size : 1);
            if (!buf) return set_error(err, INFER_ENOMEM, "%s: out of memory (%llu bytes)", p->shown,
                                       (unsigned long long)p->size);
            st = convert_tensor(t, p->shown, p->type, p->qw, buf, n_threads, err);
            if (st == INFER_OK) st = out_put(o, buf, (size_t)p->size, err);
            infer_free(buf);
        }
        /* pad after every tensor, the last included, as ggml does */
        if (st == INFER_OK) st = out_pad(o, alignment, err);
        if (st != INFER_OK) return st;
        *bytes_in += t->n_bytes;
        *bytes_out += p->size;
    }
    return INFER_OK;
}

/* The process's umask (umask has no read-only form; no other thread runs
 * yet when this is called). */
static mode_t current_umask(void) {
    const mode_t m = umask(0);
    umask(m);
    return m;
}

/* Write the whole output file: into a new file beside it (PATH.XXXXXX),
 * read back and checked, then renamed over PATH; on any failure the new
 * file is removed and PATH is left as it was (never removed: it may be a
 * device or a link, see main). qpath: the path the user gave, escaped,
 * for messages. */
static infer_status write_output(const char *path, const char *qpath, mode_t mode, const infer_gguf *g,
                                 plan_entry *plan, const uint64_t *order, const quant_meta *meta, int n_threads,
                                 uint64_t *bytes_in, uint64_t *bytes_out, infer_error *err) {
    const size_t len = strlen(path);
    size_t tmp_bytes;
    char *tmp = ck_add(len, (size_t)8, &tmp_bytes) ? NULL : infer_malloc(tmp_bytes);
    if (!tmp) return set_error(err, INFER_ENOMEM, "out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".XXXXXX", 8);
    const int fd = mkstemp(tmp);
    out_file o = {.f = fd >= 0 ? fdopen(fd, "wb") : NULL, .path = qpath};
    if (!o.f) {
        infer_status s = set_error(err, INFER_EIO, "%s: cannot create a file beside it: %s", qpath, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        infer_free(tmp);
        return s;
    }
    (void)fchmod(fd, mode); /* mkstemp's 0600 is not what the output should have */
    infer_status st = write_header(&o, g, plan, order, meta, err);
    if (st == INFER_OK) st = write_data(&o, g, plan, order, n_threads, bytes_in, bytes_out, err);
    if (fclose(o.f) != 0 && st == INFER_OK) st = set_error(err, INFER_EIO, "%s: close failed", qpath);
    if (st == INFER_OK) { /* read back what was written: a complete, valid GGUF file */
        infer_gguf *check = NULL;
        infer_error e2 = {0};
        if (infer_gguf_open(tmp, 0, &check, &e2) != INFER_OK)
            st = set_error(err, INFER_EFORMAT, "%s: the written file does not read back: %s", qpath, e2.message);
        else if (infer_gguf_tensor_count(check) != infer_gguf_tensor_count(g))
            st = set_error(err, INFER_EFORMAT, "%s: the written file has the wrong tensor count", qpath);
        infer_gguf_close(check);
    }
    if (st == INFER_OK && rename(tmp, path) != 0)
        st = set_error(err, INFER_EIO, "%s: cannot rename the written file to it: %s", qpath, strerror(errno));
    if (st != INFER_OK) unlink(tmp);
    infer_free(tmp);
    return st;
}

/* ---- the importance matrix ------------------------------------------------------------------ */

/* --imatrix and the options that filter it (llama-quantize's). */
typedef struct {
    const char *path;   /* --imatrix FILE, or NULL */
    const char **names; /* --include-weights / --exclude-weights NAME (argc slots) */
    size_t n_names;
    int include, exclude; /* which of the two was given */
} imatrix_opts;

/* Read --imatrix's file into *im and filter it; qo->has_imatrix is set
 * when entries are left (none left: the model is quantized as without
 * one, as llama-quantize does). Returns 0 or the exit status. */
static int imatrix_open(const imatrix_opts *io, quant_options *qo, imatrix **im, imatrix_record *rec) {
    char q[512];
    infer_error err = {0};
    if (!io->path) return 0;
    escape_cstr(io->path, q, sizeof q);
    const infer_status st = imatrix_load(io->path, im, &err);
    if (st != INFER_OK) {
        fprintf(stderr, "infer-quantize: --imatrix %s: %s\n", q, err.message);
        return st == INFER_ENOMEM ? 3 : 2;
    }
    const size_t left = io->n_names ? imatrix_filter(*im, io->names, io->n_names, io->include) : (*im)->n_entries;
    printf("infer-quantize: %s: %zu importance matrix entries (%zu in the file), %d chunks\n", q, left,
           (*im)->n_entries, (int)(*im)->chunks);
    if (left == 0) {
        fprintf(stderr, "infer-quantize: %s: no entries left after --%s-weights: quantizing without an importance "
                        "matrix\n", q, io->include ? "include" : "exclude");
        return 0;
    }
    qo->has_imatrix = 1;
    *rec = (imatrix_record){.file = io->path, .im = *im, .n_entries = left};
    return 0;
}

/* Each converted tensor's importance weights: the entry of its name, of
 * ne[0] values per expert (ne[2]). llama-quantize refuses an entry of
 * another size, except for token_embd.weight, which it then quantizes
 * without (it is never a matmul weight llama-imatrix saw); a tensor with
 * no entry is quantized without one, as there, but in a Q2_K_S file a Q2_K
 * tensor other than token_embd.weight must have one (llama-quantize:
 * "the result will be garbage"). */
static infer_status imatrix_attach(const infer_gguf *g, plan_entry *plan, const imatrix *im, uint32_t ftype,
                                   infer_error *err) {
    uint64_t found = 0, converted = 0;
    for (uint64_t i = 0; i < infer_gguf_tensor_count(g); i++) {
        const infer_gguf_tensor *t = infer_gguf_tensor_at(g, i);
        plan_entry *p = &plan[i];
        if (p->type == t->type) continue; /* copied */
        converted++;
        const int embd = !strcmp(p->name, "token_embd.weight");
        const imatrix_entry *e = imatrix_find(im, p->name);
        uint64_t want;
        if (e && (ck_mul(t->ne[0], t->ne[2], &want) || e->n != want)) { /* unused dims are 1 */
            if (!embd)
                return set_error(err, INFER_EFORMAT, "%s: the importance matrix has %llu values for it, the "
                                 "tensor wants %llu (ne[0] x ne[2])", p->shown, (unsigned long long)e->n,
                                 (unsigned long long)want);
            e = NULL;
        }
        if (!e && ftype == FT_Q2_K_S && p->type == INFER_TYPE_Q2_K && !embd)
            return set_error(err, INFER_EFORMAT, "%s: no importance matrix entry for it: Q2_K_S quantizes its "
                             "Q2_K tensors only with one (as llama-quantize)", p->shown);
        if (!e) continue;
        p->qw = e->values;
        found++;
    }
    printf("infer-quantize: importance weights for %llu of the %llu tensors converted\n", (unsigned long long)found,
           (unsigned long long)converted);
    return INFER_OK;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer-quantize [options] IN.gguf [OUT.gguf] TYPE [NTHREADS]\n"
            "  (llama-quantize's arguments; options may also come after them)\n"
            "\n"
            "  TYPE    Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M\n"
            "          Q5_K_S Q5_K_M Q6_K, Q2_K_S (with --imatrix only)\n"
            "          (Q3_K, Q4_K, Q5_K: the _S mixtures) or F16 BF16 F32, any case,\n"
            "          or llama.cpp's number for it (2 = Q4_0, 15 = Q4_K_M, ...)\n"
            "  OUT     left out: ggml-model-TYPE.gguf in IN's directory\n"
            "  NTHREADS, -t N\n"
            "          threads (default: the CPUs it may run on); the output does not depend on it\n"
            "\n"
            "  --pure  every quantizable weight in TYPE: no Q6_K output.weight, no\n"
            "          bumped attn_v / ffn_down layers (llama-quantize --pure)\n"
            "  --output-tensor-type T, --token-embedding-type T\n"
            "          output.weight / token_embd.weight in T (f32 f16 bf16 q4_0 q4_1\n"
            "          q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K), --pure or not\n"
            "  --leave-output-tensor\n"
            "          output.weight copied as it is\n"
            "  --tensor-type PATTERN=T (repeatable)\n"
            "          weights whose name PATTERN (a regex, searched) matches are written\n"
            "          in T instead of the rules' type, --pure or not; the first match wins\n"
            "          (a float TYPE ignores it; as llama-quantize)\n"
            "  --tensor-type-file FILE\n"
            "          PATTERN=T words from FILE, separated by white space, in their order\n"
            "  --imatrix FILE\n"
            "          importance matrix from llama-imatrix (legacy .dat or GGUF): the\n"
            "          weighted quantizers and the has_imatrix rules, as llama-quantize\n"
            "  --include-weights NAME, --exclude-weights NAME (repeatable, not both)\n"
            "          use the matrix only for / not for tensors whose name contains NAME\n"
            "  --override-kv KEY=TYPE:VALUE (repeatable)\n"
            "          set metadata KEY in the output: TYPE int (INT32), float (FLOAT32),\n"
            "          bool (true/false) or str (at most 127 bytes)\n"
            "  --allow-requantize\n"
            "          accepted; quantized input is always converted here\n"
            "\n"
            "Tensor types follow llama-quantize's rules for TYPE; the quantizers are\n"
            "byte-identical to llama.cpp's (reference ones without --imatrix, its\n"
            "importance-weighted ones with), and so are the files. 1-D tensors (norms)\n"
            "are copied.\n");
}

static int quantize_main(int argc, char **argv, quant_options *qo, imatrix_opts *io, kv_override *ovr) {
    const char *in = NULL, *out = NULL, *pos[4];
    int n_pos = 0, t_given = 0;
    size_t n_ovr = 0;
    const int ncpu = infer_default_threads();
    const int dflt_threads = ncpu > MAX_THREADS ? MAX_THREADS : ncpu;
    int n_threads = dflt_threads;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pure")) qo->pure = 1;
        else if (!strcmp(argv[i], "--leave-output-tensor")) qo->leave_output = 1;
        else if (!strcmp(argv[i], "--allow-requantize")) {
            /* llama-quantize converts quantized input only with it; here always */
        } else if (!strcmp(argv[i], "--override-kv")) {
            char msg[512];
            if (i + 1 >= argc) {
                fprintf(stderr, "infer-quantize: --override-kv wants KEY=TYPE:VALUE\n");
                return 1;
            }
            if (kv_override_parse(argv[++i], &ovr[n_ovr], msg, sizeof msg) != 0) {
                fprintf(stderr, "infer-quantize: %s\n", msg);
                return 1;
            }
            n_ovr++;
        }
        else if (!strcmp(argv[i], "--tensor-type") || !strcmp(argv[i], "--tensor-type-file")) {
            char msg[512];
            const int file = !strcmp(argv[i], "--tensor-type-file");
            if (i + 1 >= argc) {
                fprintf(stderr, "infer-quantize: %s wants %s\n", argv[i], file ? "a file" : "PATTERN=TYPE");
                return 1;
            }
            i++;
            const int r = file ? quant_override_add_file(qo, argv[i], msg, sizeof msg)
                               : quant_override_add(qo, argv[i], msg, sizeof msg);
            if (r != 0) {
                fprintf(stderr, "infer-quantize: %s\n", msg);
                return r == -2 ? 3 : 1;
            }
        }
        else if (!strcmp(argv[i], "--output-tensor-type") || !strcmp(argv[i], "--token-embedding-type")) {
            const int64_t t = i + 1 < argc ? tensor_type_by_name(argv[i + 1]) : -1;
            if (t < 0) {
                fprintf(stderr, "infer-quantize: %s wants a tensor type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K "
                                "q3_K q4_K q5_K q6_K\n", argv[i]);
                return 1;
            }
            if (!strcmp(argv[i], "--output-tensor-type")) qo->output_type = t;
            else qo->embd_type = t;
            i++;
        } else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            long v = 0;
            if (i + 1 >= argc || parse_whole_int(argv[i + 1], &v) || v < 1 || v > MAX_THREADS) {
                fprintf(stderr, "infer-quantize: %s wants a thread count in 1..%d\n", argv[i], MAX_THREADS);
                return 1;
            }
            n_threads = (int)v;
            t_given = 1;
            i++;
        }
        else if (!strcmp(argv[i], "--imatrix") || !strcmp(argv[i], "--include-weights") ||
                 !strcmp(argv[i], "--exclude-weights")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "infer-quantize: %s wants an argument\n", argv[i]);
                return 1;
            }
            if (!strcmp(argv[i], "--imatrix")) io->path = argv[i + 1];
            else {
                io->names[io->n_names++] = argv[i + 1];
                if (argv[i][2] == 'i') io->include = 1;
                else io->exclude = 1;
            }
            i++;
        }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "infer-quantize: unknown option %s\n", argv[i]);
            usage(stderr);
            return 1;
        } else if (n_pos < 4) {
            pos[n_pos++] = argv[i];
        } else {
            usage(stderr);
            return 1;
        }
    }
    /* llama-quantize's arguments: IN [OUT] TYPE [NTHREADS]. A second one
     * that is a type (a name or a number) leaves OUT out: ggml-model-TYPE.gguf
     * in IN's directory. */
    if (n_pos < 2) {
        usage(stderr);
        return 1;
    }
    in = pos[0];
    const char *shown = NULL;
    int known = 0, next = 2;
    char q[96], out_buf[4160];
    const file_type *ft = file_type_parse(pos[1], &shown, &known);
    if (known) {
        const char *slash = strrchr(in, '/');
        const size_t dir_len = slash ? (size_t)(slash - in) + 1 : 0;
        if (dir_len > 4096) {
            fprintf(stderr, "infer-quantize: %s: directory name too long for the default output\n",
                    escape_cstr(in, q, sizeof q));
            return 1;
        }
        snprintf(out_buf, sizeof out_buf, "%.*sggml-model-%s.gguf", (int)dir_len, in, shown);
        out = out_buf;
    } else {
        out = pos[1];
        if (n_pos < 3) {
            fprintf(stderr, "infer-quantize: missing TYPE\n");
            usage(stderr);
            return 1;
        }
        ft = file_type_parse(pos[2], &shown, &known);
        next = 3;
    }
    const char *tname = pos[next - 1];
    if (!ft) {
        fprintf(stderr, "infer-quantize: %s type '%s'\n", known ? "unsupported (llama-quantize's, not written here)"
                                                                 : "unknown", escape_cstr(tname, q, sizeof q));
        usage(stderr);
        return 1;
    }
    if (n_pos > next + 1) {
        usage(stderr);
        return 1;
    }
    if (n_pos == next + 1) {
        if (t_given) {
            fprintf(stderr, "infer-quantize: threads given twice (-t and NTHREADS)\n");
            return 1;
        }
        long v; /* llama-quantize's last argument; 0 or less: the default, as there */
        if (parse_whole_int(pos[next], &v) != 0) {
            fprintf(stderr, "infer-quantize: invalid NTHREADS '%s'\n", escape_cstr(pos[next], q, sizeof q));
            return 1;
        }
        n_threads = v <= 0 ? dflt_threads : v > MAX_THREADS ? MAX_THREADS : (int)v;
    }
    if (qo->n_overrides && !is_quantized(ft->type))
        fprintf(stderr, "infer-quantize: %s is not a quantized type: --tensor-type ignored (as llama-quantize)\n",
                ft->name);
    if (io->include && io->exclude) {
        fprintf(stderr, "infer-quantize: --include-weights and --exclude-weights cannot be used together\n");
        return 1;
    }
    if (io->n_names && !io->path) {
        fprintf(stderr, "infer-quantize: --%s-weights wants --imatrix\n", io->include ? "include" : "exclude");
        return 1;
    }
    char qin[512], qout[512]; /* the paths as messages show them */
    escape_cstr(in, qin, sizeof qin);
    escape_cstr(out, qout, sizeof qout);
    /* Writing over the (mapped) input would pull the bytes from under us. */
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        fprintf(stderr, "infer-quantize: %s: output and input are the same file\n", qout);
        return 1;
    }
    /* The output is written beside and renamed over OUT: not over a device,
     * a FIFO or a directory (as root that would replace /dev/null). */
    const int exists = stat(out, &so) == 0;
    if (exists && !S_ISREG(so.st_mode)) {
        fprintf(stderr, "infer-quantize: %s: not a regular file\n", qout);
        return 1;
    }
    /* As writing into OUT would: an existing OUT keeps its mode, a new one
     * gets 0666 less the umask; a link to a file stays a link (the file it
     * names is the one replaced). */
    const mode_t mode = exists ? so.st_mode & 07777 : 0666 & ~current_umask();
    char *real = exists ? realpath(out, NULL) : NULL;
    const char *dest = real ? real : out;

    infer_error err = {0};
    infer_gguf *g = NULL;
    imatrix *im = NULL;
    imatrix_record rec = {0};
    int rc = imatrix_open(io, qo, &im, &rec);
    if (rc == 0 && ft->ftype == FT_Q2_K_S && !qo->has_imatrix) {
        fprintf(stderr, "infer-quantize: Q2_K_S needs an importance matrix (--imatrix; llama-quantize refuses it "
                        "without one too)\n");
        rc = 1;
    }
    if (rc != 0) {
        imatrix_free(im);
        free(real);
        return rc;
    }
    if (infer_gguf_open(in, 0, &g, &err) != INFER_OK) {
        fprintf(stderr, "infer-quantize: %s: %s\n", qin, err.message);
        imatrix_free(im);
        free(real);
        return 2;
    }
    infer_status st;
    const uint64_t n = infer_gguf_tensor_count(g);
    plan_entry *plan = infer_calloc(n ? n : 1, sizeof *plan);
    uint64_t *order = infer_calloc(n ? n : 1, sizeof *order); /* the output's tensor order */
    uint64_t bytes_in = 0, bytes_out = 0;
    if (!plan || !order) {
        fprintf(stderr, "infer-quantize: out of memory\n");
        rc = 3;
    } else if ((st = make_plan(g, ft, qo, plan, order, &err)) != INFER_OK ||
               (qo->has_imatrix && (st = imatrix_attach(g, plan, im, ft->ftype, &err)) != INFER_OK)) {
        fprintf(stderr, "infer-quantize: %s: %s\n", qin, err.message);
        rc = st == INFER_EINVAL ? 1 : st == INFER_ENOMEM ? 3 : 2;
    } else {
        printf("infer-quantize: %s -> %s, %s%s%s (file type %u), %llu tensors\n", qin, qout, ft->name,
               qo->pure ? " --pure" : "", qo->has_imatrix ? " with an importance matrix" : "", ft->ftype,
               (unsigned long long)n);
        const quant_meta meta = {.ftype = ft->ftype, .imx = qo->has_imatrix ? &rec : NULL, .ovr = ovr,
                                 .n_ovr = n_ovr};
        st = write_output(dest, qout, mode, g, plan, order, &meta, n_threads, &bytes_in, &bytes_out, &err);
        if (st != INFER_OK) {
            fprintf(stderr, "infer-quantize: %s\n", err.message);
            rc = st == INFER_EUNSUPPORTED || st == INFER_EFORMAT ? 2 : 3;
        } else {
            printf("infer-quantize: tensors %.2f MiB -> %.2f MiB, wrote %s\n", bytes_in / 1048576.0,
                   bytes_out / 1048576.0, qout);
        }
    }
    infer_free(order);
    infer_free(plan);
    infer_gguf_close(g);
    imatrix_free(im);
    free(real);
    return rc;
}

int main(int argc, char **argv) {
    quant_options qo = {.output_type = -1, .embd_type = -1};
    imatrix_opts io = {.names = calloc((size_t)argc, sizeof(char *))};
    kv_override *ovr = calloc((size_t)argc, sizeof *ovr); /* one per option at most */
    if (!io.names || !ovr) {
        fprintf(stderr, "infer-quantize: out of memory\n");
        free(io.names);
        free(ovr);
        return 3;
    }
    const int rc = quantize_main(argc, argv, &qo, &io, ovr);
    quant_options_free(&qo);
    free(io.names);
    free(ovr);
    return rc;
}
