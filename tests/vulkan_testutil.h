/* vulkan_testutil.h - what the Vulkan suites share: the validation layer
 * switched on for every test, a check that it reported nothing, and a skip
 * with a clear message when the machine has no Vulkan device. */
#ifndef INFER_VULKAN_TESTUTIL_H
#define INFER_VULKAN_TESTUTIL_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend_vulkan.h"
#include "testutil.h"

/* Run before each test (a fresh process): the layer is enabled when
 * installed, unless INFER_VK_VALIDATION=0 asks otherwise. */
static inline void vk_test_init(void) {
    if (!getenv("INFER_VK_VALIDATION")) setenv("INFER_VK_VALIDATION", "1", 1);
#if INFER_TEST_LEAK_CHECKS
    /* Unloading lavapipe (vkDestroyInstance drops the driver) leaves a
     * little memory it allocated at load (2 x 128 bytes, realloc'd from
     * inside the driver's libraries, with Debian 12's mesa
     * 22.3.6-1+deb12u2) reachable from nowhere, and LeakSanitizer reports
     * it. Kept loaded, it stays reachable from the driver's globals. Not our
     * memory; nothing else is exempted, and on a machine without lavapipe
     * this does nothing. */
    if (dlopen("libvulkan_lvp.so", RTLD_NOW | RTLD_NODELETE)) {
        /* The programs the CLI tests run (infer, infer-bench) unload it
         * too, and on an AMD CPU (2026-11-24, a Zen 4 VM) the 128 bytes of
         * its CPU detection's cache masks were then reported: they get it
         * preloaded, which keeps it loaded the same way. ASan wants its
         * runtime first among the libraries; the preload comes before it,
         * so that check is off for them. (A suppression could not name the
         * frames: the fast unwinder stops inside the driver, and the full
         * one hung these programs.) */
        static char asan[512];
        const char *a = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%sverify_asan_link_order=0", a ? a : "", a && *a ? ":" : "");
        putenv(asan);
        putenv((char *)"LD_PRELOAD=libvulkan_lvp.so");
    }
#endif
}

/* The layer is installed here (so a run without it is a setup error). */
static inline int vk_layer_installed(void) {
    struct stat st;
    return stat("/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json", &st) == 0;
}

/* End of a test (everything freed): the validation layer, when on,
 * reported nothing, and under ASan nothing leaked. */
static inline void vk_expect_clean(void) {
    LEAK_CHECK();
    const char *v = getenv("INFER_VK_VALIDATION");
    if (vk_layer_installed() && !(v && !strcmp(v, "0"))) {
        cr_expect(vk_validation_enabled(), "VK_LAYER_KHRONOS_validation is installed but was not enabled");
    }
    cr_expect_eq(vk_validation_count(), 0, "the validation layer reported %llu warnings/errors (see stderr)",
                 (unsigned long long)vk_validation_count());
}

/* Skip the test (with the reason) when this machine has no Vulkan device
 * at all; with one, the caller goes on and any fallback or backend error
 * is a failure (a skip on any error hid a broken upload: 63 of 68 tests
 * skipped, a helper's mutant). */
static inline void vk_skip_unless_device(void) {
    size_t n = 0;
    infer_error e = {0};
    infer_status s = infer_vulkan_devices(NULL, 0, &n, &e);
    if (s != INFER_OK) cr_skip_test("no Vulkan device: %s", e.message);
    if (n == 0) cr_skip_test("no Vulkan device");
}

#define VK_SKIP_UNLESS(status, err)                                                                       \
    do {                                                                                                  \
        if ((status) == INFER_EBACKEND) {                                                                 \
            vk_skip_unless_device();                                                                      \
            cr_assert_fail("a Vulkan device is present but: %s", (err).message);                          \
        }                                                                                                 \
    } while (0)

#endif
