/*
 * infer.h - the public C API of infer, a GGUF inference engine.
 *
 * Link with libinfer.a (pkg-config: infer). Every call that can fail returns
 * an infer_status and, where it takes one, fills an infer_error with a
 * message that names the offending field.
 */
#ifndef INFER_H
#define INFER_H

#include "infer_gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INFER_VERSION_MAJOR 0
#define INFER_VERSION_MINOR 1
#define INFER_VERSION_PATCH 0
#define INFER_VERSION_STRING "0.1.0"

/* "0.1.0" */
const char *infer_version(void);

#ifdef __cplusplus
}
#endif

#endif /* INFER_H */
