/* version.c - the library's version string. */
#include "infer.h"

const char *infer_version(void) { return INFER_VERSION_STRING; }
