/*
 * test_vulkan_cli.c - `infer --backend vulkan` as a user runs it: the
 * same greedy text as llama.cpp's, one clear stderr line (and the CPU's
 * text) when no Vulkan driver can be used, and --list-devices. INFER_BIN
 * (set by `make test`) names the binary; skips without a Vulkan device.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "vulkan_testutil.h"

TestSuite(vulkan_cli, .init = vk_test_init);

/* Run argv (env_set: "NAME=VALUE" put in the child's environment, or
 * NULL) with stdin from /dev/null; capture stdout and stderr. */
static int run_env(char *const argv[], const char *env_set, char *out, size_t out_cap, char *err, size_t err_cap) {
    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        if (env_set) putenv((char *)env_set);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    ssize_t r;
    while ((r = read(po[0], out + no, out_cap - 1 - no)) > 0) no += (size_t)r;
    while ((r = read(pe[0], err + ne, err_cap - 1 - ne)) > 0) ne += (size_t)r;
    out[no] = err[ne] = '\0';
    close(po[0]);
    close(pe[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st), "%s died by a signal", argv[0]);
    return WEXITSTATUS(st);
}

static const char *bin(void) {
    const char *b = getenv("INFER_BIN");
    if (!b || !*b) cr_skip_test("INFER_BIN is not set (run through make test)");
    return b;
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(vulkan_cli, list_devices_names_type_memory_subgroup_fp16_int8) {
    static char out[16384], err[16384];
    char *argv[] = {(char *)bin(), "--list-devices", NULL};
    int rc = run_env(argv, NULL, out, sizeof out, err, sizeof err);
    if (rc != 0) cr_skip_test("no Vulkan device: %s", err);
    cr_expect(strstr(out, "0: ") == out, "%s", out);
    cr_expect(strstr(out, "GiB") && strstr(out, "subgroup") && strstr(out, "fp16") && strstr(out, "int8"), "%s", out);
}

Test(vulkan_cli, greedy_text_is_llama_cpps) {
    char model[512], ref[512], prompt[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    SHARED_OR_SKIP(ref, "reference/greedy/stories260K.3.txt");
    SHARED_OR_SKIP(prompt, "reference/greedy/stories260K.3.prompt.txt");
    static char out[65536], err[65536];
    char *ld[] = {(char *)bin(), "--list-devices", NULL};
    if (run_env(ld, NULL, out, sizeof out, err, sizeof err) != 0) cr_skip_test("no Vulkan device: %s", err);
    size_t n;
    char *want = read_file(ref, &n), *p = read_file(prompt, &n);
    char *argv[] = {(char *)bin(), model, "-p", p, "-n", "128", "--temp", "0", "--backend", "vulkan", NULL};
    cr_assert_eq(run_env(argv, NULL, out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
    cr_expect_str_eq(out, want, "stdout must be llama.cpp's continuation");
    cr_expect_eq(count(err, "running on the CPU"), 0, "%s", err);
    free(want);
    free(p);
}

/* No usable driver: exit 0, the CPU's text, and exactly one line that
 * says why Vulkan is not used. */
Test(vulkan_cli, no_driver_falls_back_to_the_cpu_with_one_line) {
    char model[512];
    SHARED_OR_SKIP(model, "models/stories260K.gguf");
    static char out[8192], err[8192], cpu_out[8192], cpu_err[8192];
    char *cpu[] = {(char *)bin(), model, "-p", "Once upon a time", "-n", "24", "--temp", "0", NULL};
    cr_assert_eq(run_env(cpu, NULL, cpu_out, sizeof cpu_out, cpu_err, sizeof cpu_err), 0, "%s", cpu_err);
    char *argv[] = {(char *)bin(), model, "-p", "Once upon a time", "-n", "24", "--temp", "0", "--backend", "vulkan", NULL};
    setenv("INFER_VK_VALIDATION", "0", 1); /* the loader's own complaints are not the CLI's line */
    cr_assert_eq(run_env(argv, "VK_ICD_FILENAMES=/nonexistent/icd.json", out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(out, cpu_out);
    cr_expect_eq(count(err, "running on the CPU"), 1, "stderr: %s", err);
    cr_expect_eq(count(err, "Vulkan"), 1, "one line about Vulkan: %s", err);
}
