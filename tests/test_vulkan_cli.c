/*
 * test_vulkan_cli.c - `infer --backend vulkan` as a user runs it: the
 * same greedy text as llama.cpp's, one clear stderr line (and the CPU's
 * text) when no Vulkan driver can be used, --list-devices, and
 * `infer-bench --backend vulkan`'s generation row. INFER_BIN
 * (set by `make test`) names the binary; skips without a Vulkan device.
 */

#include "vulkan_testutil.h"

TestSuite(vulkan_cli, .init = vk_test_init);

Test(vulkan_cli, list_devices_names_type_memory_subgroup_fp16_int8) {
    static char out[16384], err[16384];
    char *argv[] = {(char *)test_infer_bin(), "--list-devices", NULL};
    vk_skip_unless_device();
    int rc = test_run(argv, NULL, out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "--list-devices with a device present: %s", err);
    cr_expect(strstr(out, "0: ") == out, "%s", out);
    cr_expect(strstr(out, "GiB") && strstr(out, "subgroup") && strstr(out, "fp16") && strstr(out, "int8"), "%s", out);
}

Test(vulkan_cli, greedy_text_is_llama_cpps) {
    char model[512], ref[512], prompt[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    SHARED_OR_SKIP(ref, "reference/greedy/stories260K.3.txt");
    SHARED_OR_SKIP(prompt, "reference/greedy/stories260K.3.prompt.txt");
    static char out[65536], err[65536];
    vk_skip_unless_device();
    size_t n;
    char *want = read_file(ref, &n), *p = read_file(prompt, &n);
    char *argv[] = {(char *)test_infer_bin(), model, "-p", p, "-n", "128", "--temp", "0", "--backend", "vulkan", NULL};
    cr_assert_eq(test_run(argv, NULL, out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
    cr_expect_str_eq(out, want, "stdout must be llama.cpp's continuation");
    cr_expect_eq(test_count(err, "running on the CPU"), 0, "%s", err);
    free(want);
    free(p);
}

/* No usable driver: exit 0, the CPU's text, and exactly one line that
 * says why Vulkan is not used. */
Test(vulkan_cli, no_driver_falls_back_to_the_cpu_with_one_line) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char out[8192], err[8192], cpu_out[8192], cpu_err[8192];
    char *cpu[] = {(char *)test_infer_bin(), model, "-p", "Once upon a time", "-n", "24", "--temp", "0", NULL};
    cr_assert_eq(test_run(cpu, NULL, cpu_out, sizeof cpu_out, cpu_err, sizeof cpu_err), 0, "%s", cpu_err);
    char *argv[] = {(char *)test_infer_bin(), model, "-p", "Once upon a time", "-n", "24", "--temp", "0", "--backend", "vulkan", NULL};
    setenv("INFER_VK_VALIDATION", "0", 1); /* the loader's own complaints are not the CLI's line */
    /* Loaders since 1.3.207 read VK_DRIVER_FILES first and ignore
     * VK_ICD_FILENAMES when it is set (as a user pointing at an NVIDIA
     * driver's JSON may have it): name the missing driver in both, and
     * add no other. */
    setenv("VK_DRIVER_FILES", "/nonexistent/icd.json", 1);
    unsetenv("VK_ADD_DRIVER_FILES");
    cr_assert_eq(test_run(argv, "VK_ICD_FILENAMES=/nonexistent/icd.json", out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(out, cpu_out);
    cr_expect_eq(test_count(err, "running on the CPU"), 1, "stderr: %s", err);
    cr_expect_eq(test_count(err, "Vulkan"), 1, "one line about Vulkan: %s", err);
}

/* infer-bench on the device: the row says Vulkan and gives the GB/s of
 * weights streamed, but no share of the host-memory probe (which measures
 * the CPU's memory, not the device's). */
Test(vulkan_cli, bench_row_on_the_device_has_no_host_bandwidth_share) {
    char model[512], bin[600];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char out[16384], err[16384];
    vk_skip_unless_device();
    test_tool_bin(bin, sizeof bin, "infer-bench");
    char *argv[] = {bin, "-m", model, "-p", "0", "-n", "8", "-r", "2", "--backend", "vulkan", NULL};
    cr_assert_eq(test_run(argv, NULL, out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
    char row[1024], cell[3][64];
    int found = 0;
    for (int k = 0; !found && test_md_row(out, k, row, sizeof row); k++) {
        test_md_cell(row, 5, cell[0], sizeof cell[0]);
        found = strcmp(cell[0], "tg8") == 0;
    }
    cr_assert(found, "no tg8 row: %s", out);
    test_md_cell(row, 3, cell[0], sizeof cell[0]);
    test_md_cell(row, 7, cell[1], sizeof cell[1]);
    test_md_cell(row, 8, cell[2], sizeof cell[2]);
    cr_expect(strstr(cell[0], "Vulkan"), "backend cell '%s'", cell[0]);
    cr_expect(atof(cell[1]) > 0, "GB/s cell '%s'", cell[1]);
    cr_expect_eq(cell[2][0], '\0', "%% bw cell '%s' should be empty on a device", cell[2]);
}
