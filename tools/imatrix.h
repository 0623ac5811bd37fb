/* imatrix.h - importance matrices for infer-quantize: llama-imatrix's
 * legacy binary file (.dat) and its GGUF file (imatrix_parse_gguf), read
 * as hostile files (imatrix.c).
 *
 * The file, all integers int32 little-endian:
 *   n_entries (>= 1)
 *   n_entries times: name length, name bytes, ncall, nval, nval float32
 *   optionally: chunks (m_last_call), dataset length, dataset bytes
 * Each entry is one weight tensor's column importances (mean squares of
 * the activations met; llama-imatrix stores sums, and ncall the number of
 * chunks they were summed over: values are divided by ncall when it is
 * positive, as llama-quantize divides them). A 3-D (expert) tensor's entry
 * holds ne[0] values per expert. */
#ifndef INFER_TOOLS_IMATRIX_H
#define INFER_TOOLS_IMATRIX_H

#include <stddef.h>
#include <stdint.h>

#include "infer.h"

typedef struct {
    char *name;     /* NUL-terminated (the file's bytes hold no NUL) */
    size_t name_len;
    float *values;  /* n, already divided by ncall, all finite */
    uint64_t n;
    int dropped;    /* taken out by imatrix_filter */
} imatrix_entry;

typedef struct {
    imatrix_entry *entries; /* in the file's order */
    size_t n_entries;
    size_t *slots;          /* hash table of entry index + 1 (0: empty) */
    size_t n_slots;         /* a power of two */
    char *dataset;          /* NUL-terminated, NULL when the file has none */
    size_t dataset_len;
    int32_t chunks;         /* m_last_call; 0 when absent */
} imatrix;

/* Parse a legacy imatrix file from memory (size bytes). Refused with
 * INFER_EFORMAT and a message naming the field and its byte offset:
 * truncation anywhere, n_entries < 1 or more than the bytes left could
 * hold, a name length < 1 or past the end, a name with a NUL byte, a
 * duplicate name, a negative ncall, nval < 1 or past the end, a NaN or
 * infinite value (after the division: llama-quantize refuses those), a
 * negative chunk count or dataset length, bytes after the dataset.
 * INFER_ENOMEM when an allocation fails; nothing is left allocated on any
 * error. */
infer_status imatrix_parse(const uint8_t *buf, size_t size, imatrix **out, infer_error *err);

/* Parse a GGUF imatrix (llama-imatrix from mid-2025) from memory, with
 * the project's GGUF reader: one entry per tensor NAME.in_sum2 (F32, ne0
 * by n_mat matrices) with NAME.counts (F32, n_mat): values sum / count,
 * 1 for a matrix whose count is not positive (as llama-quantize reads
 * them); imatrix.datasets (array of strings; the first is the dataset),
 * imatrix.chunk_count and imatrix.chunk_size (UINT32) must be present.
 * Refused (INFER_EFORMAT): what the GGUF reader refuses, no .in_sum2
 * tensor, a .in_sum2 without .counts or the reverse, a type other than
 * F32, counts that are not one per matrix, a non-finite value, missing or
 * mistyped keys. */
infer_status imatrix_parse_gguf(const uint8_t *buf, size_t size, imatrix **out, infer_error *err);

/* Read and parse the file at path, GGUF when it starts "GGUF", legacy
 * otherwise (INFER_EIO when it cannot be read). */
infer_status imatrix_load(const char *path, imatrix **out, infer_error *err);

void imatrix_free(imatrix *m);

/* llama-quantize's --include-weights (include 1) / --exclude-weights
 * (include 0): entries whose name contains one of names[0..n) are kept /
 * dropped. Returns the entries left. */
size_t imatrix_filter(imatrix *m, const char *const *names, size_t n, int include);

/* The entry named name (not dropped), or NULL. */
const imatrix_entry *imatrix_find(const imatrix *m, const char *name);

#endif
