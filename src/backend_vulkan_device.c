/*
 * backend_vulkan_device.c - instance, physical device choice, the logical
 * device and its registry, validation messages, device listing.
 *
 * One vk_dev per physical device index, shared by every context that uses
 * it (reference-counted under the registry lock), so a model's weights
 * are uploaded once per device and pipelines compiled once.
 *
 * Environment (for tests and debugging):
 *   INFER_VK_VALIDATION=1    enable VK_LAYER_KHRONOS_validation and count
 *                            (and print) what it reports
 *   INFER_VK_NO_SUBGROUP=1   use the shared-memory shader variants
 *   INFER_VK_GPU_SHAPES=1|0  use (or not) the GPU's work shapes on any device
 *   INFER_VK_MAX_BINDING=N   cap every binding (windows, weight chunks) at
 *                            N bytes, to exercise the splitting code
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_vulkan.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static vk_dev *registry;
static _Atomic uint64_t validation_messages;
static _Atomic int validation_on;

const char *vk_result_name(VkResult r) {
    switch (r) {
#define R(x) case x: return #x
        R(VK_SUCCESS); R(VK_NOT_READY); R(VK_TIMEOUT); R(VK_INCOMPLETE);
        R(VK_ERROR_OUT_OF_HOST_MEMORY); R(VK_ERROR_OUT_OF_DEVICE_MEMORY);
        R(VK_ERROR_INITIALIZATION_FAILED); R(VK_ERROR_DEVICE_LOST);
        R(VK_ERROR_MEMORY_MAP_FAILED); R(VK_ERROR_LAYER_NOT_PRESENT);
        R(VK_ERROR_EXTENSION_NOT_PRESENT); R(VK_ERROR_FEATURE_NOT_PRESENT);
        R(VK_ERROR_INCOMPATIBLE_DRIVER); R(VK_ERROR_TOO_MANY_OBJECTS);
        R(VK_ERROR_FORMAT_NOT_SUPPORTED); R(VK_ERROR_FRAGMENTED_POOL);
        R(VK_ERROR_OUT_OF_POOL_MEMORY); R(VK_ERROR_INVALID_EXTERNAL_HANDLE);
        R(VK_ERROR_UNKNOWN);
#undef R
    default: return "VkResult (unknown)";
    }
}

infer_status vk_fail(infer_error *err, VkResult r, const char *what) {
    return set_error(err, INFER_EBACKEND, "Vulkan: %s failed: %s (%d)", what, vk_result_name(r), (int)r);
}

uint64_t vk_validation_count(void) { return atomic_load(&validation_messages); }
int vk_validation_enabled(void) { return atomic_load(&validation_on); }

static int env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                    VkDebugUtilsMessageTypeFlagsEXT types,
                                                    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)types;
    (void)user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        atomic_fetch_add(&validation_messages, 1);
        fprintf(stderr, "infer: Vulkan validation: %s\n", data && data->pMessage ? data->pMessage : "(no message)");
    }
    return VK_FALSE;
}

static int layer_available(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return 0;
    VkLayerProperties *lp = infer_calloc(n, sizeof *lp);
    int found = 0;
    if (lp && vkEnumerateInstanceLayerProperties(&n, lp) == VK_SUCCESS) {
        for (uint32_t i = 0; i < n; i++) found |= strcmp(lp[i].layerName, name) == 0;
    }
    infer_free(lp);
    return found;
}

/* An instance, with the validation layer and a messenger when asked. */
static infer_status instance_new(VkInstance *inst, VkDebugUtilsMessengerEXT *msgr, infer_error *err) {
    uint32_t api = VK_API_VERSION_1_1;
    if (vkEnumerateInstanceVersion(&api) != VK_SUCCESS) api = VK_API_VERSION_1_1;
    if (api > VK_API_VERSION_1_3) api = VK_API_VERSION_1_3;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "infer",
                             .pEngineName = "infer", .apiVersion = api};
    const char *layer = "VK_LAYER_KHRONOS_validation";
    const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    int validate = env_on("INFER_VK_VALIDATION") && layer_available(layer);
    VkDebugUtilsMessengerCreateInfoEXT mci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    if (validate) {
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = &layer;
        ci.enabledExtensionCount = 1;
        ci.ppEnabledExtensionNames = &ext;
        ci.pNext = &mci; /* also covers vkCreateInstance / vkDestroyInstance */
    }
    *msgr = VK_NULL_HANDLE;
    VkResult r = vkCreateInstance(&ci, NULL, inst);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
        return set_error(err, INFER_EBACKEND, "Vulkan: no driver (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER)");
    }
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkCreateInstance");
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(*inst, "vkCreateDebugUtilsMessengerEXT");
        r = create ? create(*inst, &mci, NULL, msgr) : VK_ERROR_EXTENSION_NOT_PRESENT;
        if (r != VK_SUCCESS) {
            vkDestroyInstance(*inst, NULL);
            return vk_fail(err, r, "vkCreateDebugUtilsMessengerEXT");
        }
        atomic_store(&validation_on, 1);
    }
    return INFER_OK;
}

static void instance_free(VkInstance inst, VkDebugUtilsMessengerEXT msgr) {
    if (msgr) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(inst, msgr, NULL);
    }
    vkDestroyInstance(inst, NULL);
}

/* The physical devices (malloc'd array). */
static infer_status physical_devices(VkInstance inst, VkPhysicalDevice **out, uint32_t *n, infer_error *err) {
    *out = NULL;
    *n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, n, NULL);
    if (r != VK_SUCCESS) return vk_fail(err, r, "vkEnumeratePhysicalDevices");
    if (*n == 0) return set_error(err, INFER_EBACKEND, "Vulkan: no device");
    *out = infer_calloc(*n, sizeof **out);
    if (!*out) return set_error(err, INFER_ENOMEM, "out of memory");
    r = vkEnumeratePhysicalDevices(inst, n, *out);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        infer_free(*out);
        *out = NULL;
        return vk_fail(err, r, "vkEnumeratePhysicalDevices");
    }
    return INFER_OK;
}

/* Subgroup size and whether arithmetic subgroup ops work in compute. */
static void subgroup_props(VkPhysicalDevice pd, uint32_t *size, int *arith) {
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    *size = sg.subgroupSize;
    *arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
             (sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT) &&
             (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) && sg.subgroupSize >= 1 &&
             sg.subgroupSize <= 128;
}

static uint64_t device_local_bytes(VkPhysicalDevice pd) {
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    uint64_t best = 0;
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++) {
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mp.memoryHeaps[i].size > best)
            best = mp.memoryHeaps[i].size;
    }
    return best;
}

/* Preference for automatic choice: higher is better; 0 = never automatic. */
static int type_rank(VkPhysicalDeviceType t, int gpu_only) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return gpu_only ? 0 : 1;
    default: return gpu_only ? 0 : 1;
    }
}

static uint32_t compute_queue_family(VkPhysicalDevice pd, int *found) {
    uint32_t n = 0, best = 0;
    *found = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = n ? infer_calloc(n, sizeof *q) : NULL;
    if (!q) return 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) continue;
        /* A compute-only family first (often a dedicated async queue). */
        if (!*found || !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = i;
        *found = 1;
    }
    infer_free(q);
    return best;
}

static int texel_format_ok(VkPhysicalDevice pd, VkFormat f) {
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(pd, f, &fp);
    return (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
}

static void dev_destroy(vk_dev *d) {
    if (!d) return;
    if (d->dev) {
        vkDeviceWaitIdle(d->dev);
        for (int i = 0; i < d->n_pipes; i++) vkDestroyPipeline(d->dev, d->pipes[i].pipe, NULL);
        vk_layouts_destroy(d);
        if (d->upload_pool) vkDestroyCommandPool(d->dev, d->upload_pool, NULL);
        vkDestroyDevice(d->dev, NULL);
    }
    if (d->inst) instance_free(d->inst, d->messenger);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->wlock);
    infer_free(d);
}

/* Limits, capped by INFER_VK_MAX_BINDING for tests. */
static void dev_limits(vk_dev *d) {
    const VkPhysicalDeviceLimits *L = &d->props.limits;
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(d->pd, &p2);
    d->max_alloc = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : ((VkDeviceSize)1 << 30);
    if (d->max_alloc > ((VkDeviceSize)1 << 40)) d->max_alloc = (VkDeviceSize)1 << 40;
    d->ssbo_range = L->maxStorageBufferRange;
    d->ssbo_align = L->minStorageBufferOffsetAlignment < 16 ? 16 : L->minStorageBufferOffsetAlignment;
    d->texel_align = L->minTexelBufferOffsetAlignment < 16 ? 16 : L->minTexelBufferOffsetAlignment;
    d->max_texels = L->maxTexelBufferElements;
    if (d->max_texels > 0x7fffffffu) d->max_texels = 0x7fffffffu; /* texelFetch takes an int */
    d->max_groups = L->maxComputeWorkGroupCount[0];
    const char *cap = getenv("INFER_VK_MAX_BINDING");
    if (cap && *cap) {
        unsigned long long c = strtoull(cap, NULL, 10);
        if (c >= 4096) {
            if (d->ssbo_range > c) d->ssbo_range = (VkDeviceSize)c;
            if (d->max_texels > c / 16) d->max_texels = c / 16;
        }
    }
    /* Tests: texel views of up to this many texels whatever the binding
     * cap (real devices' texel limits far exceed their binding range). */
    const char *tcap = getenv("INFER_VK_MAX_TEXELS");
    if (tcap && *tcap) {
        unsigned long long c = strtoull(tcap, NULL, 10);
        if (c >= 256) d->max_texels = c < L->maxTexelBufferElements && c <= 0x7fffffffu ? (uint32_t)c : d->max_texels;
    }
    /* Windows are placed at aligned offsets: keep their size aligned too. */
    d->ssbo_range &= ~(d->ssbo_align - 1);
}

static infer_status dev_create(int index, vk_dev **out, infer_error *err) {
    vk_dev *d = infer_calloc(1, sizeof *d);
    if (!d) return set_error(err, INFER_ENOMEM, "out of memory");
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        infer_free(d);
        return set_error(err, INFER_ENOMEM, "cannot create a mutex");
    }
    if (pthread_mutex_init(&d->wlock, NULL) != 0) {
        pthread_mutex_destroy(&d->lock);
        infer_free(d);
        return set_error(err, INFER_ENOMEM, "cannot create a mutex");
    }
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    infer_status s = instance_new(&d->inst, &d->messenger, err);
    if (s == INFER_OK) s = physical_devices(d->inst, &pds, &n, err);
    if (s != INFER_OK) goto fail;

    if ((uint32_t)index >= n) {
        s = set_error(err, INFER_EBACKEND, "Vulkan: no device %d (%u present)", index, n);
        goto fail;
    }
    const int pick = index;
    d->index = pick;
    d->pd = pds[pick];
    vkGetPhysicalDeviceProperties(d->pd, &d->props);
    vkGetPhysicalDeviceMemoryProperties(d->pd, &d->mem);
    if (d->props.apiVersion < VK_API_VERSION_1_1) {
        s = set_error(err, INFER_EBACKEND, "Vulkan: device %d (%s) supports only Vulkan %u.%u; 1.1 is needed", pick,
                      d->props.deviceName, VK_API_VERSION_MAJOR(d->props.apiVersion), VK_API_VERSION_MINOR(d->props.apiVersion));
        goto fail;
    }
    const VkFormat needed[] = {VK_FORMAT_R32G32B32A32_UINT, VK_FORMAT_R16G16B16A16_SFLOAT, VK_FORMAT_R32G32B32A32_SFLOAT};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        if (!texel_format_ok(d->pd, needed[i])) {
            s = set_error(err, INFER_EBACKEND, "Vulkan: %s cannot read format %d from texel buffers", d->props.deviceName,
                          (int)needed[i]);
            goto fail;
        }
    }
    uint32_t sg_size;
    int sg_arith;
    subgroup_props(d->pd, &sg_size, &sg_arith);
    d->subgroups = sg_arith && !env_on("INFER_VK_NO_SUBGROUP");
    d->sg_size = sg_size ? sg_size : 1;
    /* Several subgroups per workgroup; with shared-memory reductions a
     * workgroup of 32 (a power of two) is one group of lanes. */
    d->wg = d->subgroups ? (sg_size >= 64 ? sg_size : 64) : 32;
    if (d->wg > d->props.limits.maxComputeWorkGroupInvocations || d->wg > d->props.limits.maxComputeWorkGroupSize[0]) {
        s = set_error(err, INFER_EBACKEND, "Vulkan: %s allows fewer than %u invocations per workgroup", d->props.deviceName,
                      d->wg);
        goto fail;
    }
    /* The pipeline layout (vk_layouts_create): 6 storage buffers (4 of
     * them dynamic) and 4 uniform texel buffers in the compute stage, 3
     * sets. The spec's minimums allow a device with only 4 storage buffers
     * per stage. */
    const VkPhysicalDeviceLimits *DL = &d->props.limits;
    if (DL->maxPerStageDescriptorStorageBuffers < 6 || DL->maxDescriptorSetStorageBuffers < 6 ||
        DL->maxDescriptorSetStorageBuffersDynamic < 4 || DL->maxPerStageDescriptorSampledImages < 4 ||
        DL->maxDescriptorSetSampledImages < 4 || DL->maxPerStageResources < 10 || DL->maxBoundDescriptorSets < 3) {
        s = set_error(err, INFER_EBACKEND, "Vulkan: %s allows fewer descriptors per stage than infer binds (6 storage buffers, 4 dynamic)",
                      d->props.deviceName);
        goto fail;
    }
    /* A GPU hides memory latency with many lane groups in flight: matrix x
     * vector takes 1-2 rows per group (8 on a CPU device, where a group's
     * texel reads are what costs), RMSNorm a whole workgroup per row
     * (a power of two, shared-memory reduction). */
    const char *shapes = getenv("INFER_VK_GPU_SHAPES");
    d->gpu_shapes = shapes && *shapes ? strcmp(shapes, "0") != 0 : d->props.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU;
    d->norm_wg = 0;
    if (d->gpu_shapes) {
        const uint32_t lim = d->props.limits.maxComputeWorkGroupInvocations < d->props.limits.maxComputeWorkGroupSize[0]
                                 ? d->props.limits.maxComputeWorkGroupInvocations
                                 : d->props.limits.maxComputeWorkGroupSize[0];
        d->norm_wg = d->wg;
        while (d->norm_wg < 256 && d->norm_wg * 2 <= lim) d->norm_wg *= 2;
    }
    dev_limits(d);

    int found;
    d->qfam = compute_queue_family(d->pd, &found);
    if (!found) {
        s = set_error(err, INFER_EBACKEND, "Vulkan: %s has no compute queue", d->props.deviceName);
        goto fail;
    }
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = d->qfam,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    VkResult r = vkCreateDevice(d->pd, &dci, NULL, &d->dev);
    if (r != VK_SUCCESS) {
        d->dev = VK_NULL_HANDLE;
        s = vk_fail(err, r, "vkCreateDevice");
        goto fail;
    }
    vkGetDeviceQueue(d->dev, d->qfam, 0, &d->queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = d->qfam};
    r = vkCreateCommandPool(d->dev, &pci, NULL, &d->upload_pool);
    if (r != VK_SUCCESS) {
        d->upload_pool = VK_NULL_HANDLE;
        s = vk_fail(err, r, "vkCreateCommandPool");
        goto fail;
    }
    if ((s = vk_layouts_create(d, err)) != INFER_OK) goto fail;
    infer_free(pds);
    *out = d;
    return INFER_OK;
fail:
    infer_free(pds);
    dev_destroy(d);
    return s;
}

/* The device an automatic choice takes (best type_rank, first on ties),
 * found once per process. */
static int auto_index[2] = {-1, -1}; /* -1: not looked yet, -2: none */

static infer_status auto_pick(int gpu_only, int *index, infer_error *err) {
    if (auto_index[gpu_only] >= 0) {
        *index = auto_index[gpu_only];
        return INFER_OK;
    }
    if (auto_index[gpu_only] == -2) {
        return set_error(err, INFER_EBACKEND, gpu_only ? "Vulkan: no GPU (only CPU-type devices, which the CPU backend outruns)"
                                                       : "Vulkan: no device supports Vulkan 1.1");
    }
    VkInstance inst;
    VkDebugUtilsMessengerEXT msgr;
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    infer_status s = instance_new(&inst, &msgr, err);
    if (s != INFER_OK) return s;
    s = physical_devices(inst, &pds, &n, err);
    int pick = -1, best = 0;
    for (uint32_t i = 0; s == INFER_OK && i < n; i++) {
        VkPhysicalDeviceProperties pp;
        vkGetPhysicalDeviceProperties(pds[i], &pp);
        int rank = pp.apiVersion >= VK_API_VERSION_1_1 ? type_rank(pp.deviceType, gpu_only) : 0;
        if (rank > best) {
            best = rank;
            pick = (int)i;
        }
    }
    infer_free(pds);
    instance_free(inst, msgr);
    if (s != INFER_OK) return s;
    if (pick < 0) {
        auto_index[gpu_only] = -2;
        return set_error(err, INFER_EBACKEND,
                         gpu_only ? "Vulkan: no GPU (only CPU-type devices, which the CPU backend outruns)"
                                  : "Vulkan: no device supports Vulkan 1.1");
    }
    auto_index[gpu_only] = pick;
    *index = pick;
    return INFER_OK;
}

infer_status vk_dev_get(int index, int gpu_only, vk_dev **out, infer_error *err) {
    infer_status s = INFER_OK;
    *out = NULL;
    pthread_mutex_lock(&registry_lock);
    if (index < 0) s = auto_pick(gpu_only != 0, &index, err);
    for (vk_dev *d = registry; s == INFER_OK && d; d = d->next) {
        if (d->index == index) {
            d->refs++;
            *out = d;
            break;
        }
    }
    if (s == INFER_OK && !*out) {
        vk_dev *d = NULL;
        s = dev_create(index, &d, err);
        if (s == INFER_OK) {
            d->refs = 1;
            d->next = registry;
            registry = d;
            *out = d;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return s;
}

void vk_dev_put(vk_dev *d) {
    if (!d) return;
    pthread_mutex_lock(&registry_lock);
    int last = --d->refs == 0;
    if (last) {
        for (vk_dev **pp = &registry; *pp; pp = &(*pp)->next) {
            if (*pp == d) {
                *pp = d->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (last) dev_destroy(d);
}

/* ---- listing (public API) ---------------------------------------------------- */

static void device_info(VkPhysicalDevice pd, infer_device_info *o) {
    VkPhysicalDeviceProperties pp;
    vkGetPhysicalDeviceProperties(pd, &pp);
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", pp.deviceName);
    o->type = (int)pp.deviceType;
    o->api_version = pp.apiVersion;
    o->memory = device_local_bytes(pd);
    subgroup_props(pd, &o->subgroup_size, &o->subgroup_ops);
    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    if (pp.apiVersion >= VK_API_VERSION_1_2) {
        f2.pNext = &f12;
        if (pp.apiVersion >= VK_API_VERSION_1_3) f12.pNext = &f13;
        vkGetPhysicalDeviceFeatures2(pd, &f2);
        o->fp16 = f12.shaderFloat16 != 0;
        o->int8 = f12.shaderInt8 != 0;
        o->int_dot = f13.shaderIntegerDotProduct != 0;
    }
}

infer_status infer_vulkan_devices(infer_device_info *out, size_t cap, size_t *n, infer_error *err) {
    if (!n || (!out && cap)) return set_error(err, INFER_EINVAL, "infer_vulkan_devices: NULL argument");
    *n = 0;
    VkInstance inst;
    VkDebugUtilsMessengerEXT msgr;
    infer_status s = instance_new(&inst, &msgr, err);
    if (s != INFER_OK) return s;
    VkPhysicalDevice *pds = NULL;
    uint32_t count = 0;
    s = physical_devices(inst, &pds, &count, err);
    if (s == INFER_OK) {
        for (uint32_t i = 0; i < count && i < cap && out; i++) device_info(pds[i], &out[i]);
        *n = count;
    }
    infer_free(pds);
    instance_free(inst, msgr);
    return s;
}

uint32_t vk_mv_rows(const vk_dev *d, uint32_t type) {
    if (!d->gpu_shapes) return 8;
    return infer_type_block_size(type) == 256 ? 1 : 2; /* the K-quants' super-blocks */
}
