/* fuzz_imatrix.c - libFuzzer target for infer-quantize's importance-matrix
 * reader (tools/imatrix.c): the input as a legacy file and as a GGUF one.
 * A failure must come with a non-empty message and leave nothing
 * allocated (LeakSanitizer); on success every entry is looked up by its
 * name, and its values are read and must be finite (the reader refuses
 * NaN and infinities), the --include / --exclude filters run over it. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "imatrix.h"

#define CHECK(cond)                    \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

static void check_parsed(infer_status s, imatrix *m, const infer_error *err) {
    if (s != INFER_OK) {
        CHECK(m == NULL && err->message[0] != '\0');
        return;
    }
    CHECK(m && m->n_entries > 0);
    for (size_t i = 0; i < m->n_entries; i++) {
        const imatrix_entry *e = &m->entries[i];
        CHECK(e->name && strlen(e->name) == e->name_len && e->n > 0);
        CHECK(imatrix_find(m, e->name) == e);
        for (uint64_t j = 0; j < e->n; j++) CHECK(isfinite(e->values[j]));
    }
    const char *names[] = {"attn", "blk.0."};
    imatrix_filter(m, names, 2, 0);
    for (size_t i = 0; i < m->n_entries; i++)
        CHECK((imatrix_find(m, m->entries[i].name) == NULL) == (m->entries[i].dropped != 0));
    imatrix_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    imatrix *m = NULL;
    infer_error err = {0};
    check_parsed(imatrix_parse(data, size, &m, &err), m, &err);
    m = NULL;
    memset(&err, 0, sizeof err);
    check_parsed(imatrix_parse_gguf(data, size, &m, &err), m, &err);
    return 0;
}
