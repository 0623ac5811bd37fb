/*
 * backend_vulkan.h - the Vulkan backend's parts and what they share.
 *
 *   backend_vulkan_device.c   instance, physical device choice, the logical
 *                             device (one per physical device, shared by
 *                             every context on it, reference-counted),
 *                             validation messages, device listing
 *   backend_vulkan_pipe.c     the embedded SPIR-V, descriptor set layouts,
 *                             the pipeline layout, pipelines (created once
 *                             per device and specialization)
 *   backend_vulkan_mem.c      buffers, memory types, one-shot submissions,
 *                             the weight upload (per model and device,
 *                             shared by contexts, reference-counted)
 *   backend_vulkan_repack.c   weights' device layouts (shaders/quant.glsl)
 *   backend_vulkan_ops.c      the ops of backend.h recorded into one
 *                             command buffer per forward pass
 *   backend_vulkan.c          a context's device objects: arena, KV cache,
 *                             descriptor sets; sync, host, free
 *
 * Activations live in one device buffer (the arena) that shaders see
 * through windows: dynamic storage-buffer bindings of at most
 * maxStorageBufferRange bytes placed at the offset an op needs. Weights
 * are read as RGBA32UI texel buffers (one binding per chunk of rows within
 * maxTexelBufferElements and the allocation limit), the KV cache as
 * RGBA16F/RGBA32F texels, one buffer per layer.
 */
#ifndef INFER_BACKEND_VULKAN_H
#define INFER_BACKEND_VULKAN_H

#include <pthread.h>
#include <vulkan/vulkan.h>

#include "backend.h"

/* Descriptor sets (shaders/bindings.glsl). */
enum { VKS_CTX = 0, VKS_WEIGHT = 1, VKS_LAYER = 2, VKS_COUNT = 3 };
enum { VK_N_DYNAMIC_CTX = 3 }; /* windows A, B, C */

#define VK_PUSH_BYTES 64
#define VK_PROF_QUERIES 4096
#define VK_PROF_OPS 16
#define VK_MAX_PIPES 256

typedef struct {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map; /* host-visible buffers only */
} vk_buffer;

typedef struct {
    char name[32];
    uint32_t spec[3];
    VkPipeline pipe;
} vk_pipe_entry;

typedef struct vk_weights vk_weights;

/* One logical device on one physical device, shared by the contexts on it. */
typedef struct vk_dev {
    struct vk_dev *next; /* registry list (registry lock) */
    int refs;            /* registry lock */
    int index;           /* physical device index */
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice pd;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem;
    VkDevice dev;
    VkQueue queue;
    uint32_t qfam;
    int subgroups;         /* subgroup arithmetic in compute shaders is used */
    uint32_t sg_size;      /* subgroup size */
    uint32_t wg;           /* workgroup size of the lane shaders */
    int gpu_shapes;        /* a GPU: few rows per lane group, workgroup-wide RMSNorm */
    uint32_t norm_wg;      /* rms_norm: 0, a lane group per row; else a workgroup of this many */
    VkDeviceSize ssbo_range, ssbo_align, texel_align, max_alloc;
    uint64_t max_texels;   /* texels per weight binding */
    uint32_t max_groups;   /* maxComputeWorkGroupCount[0] */
    pthread_mutex_t lock;  /* queue submissions, pipelines */
    pthread_mutex_t wlock; /* weights list and uploads, upload pool */
    VkDescriptorSetLayout dsl[VKS_COUNT];
    VkPipelineLayout layout;
    VkCommandPool upload_pool;
    vk_pipe_entry pipes[VK_MAX_PIPES];
    int n_pipes;
    vk_weights *weights;
} vk_dev;

/* A run of a weight's rows in one binding. */
typedef struct {
    vk_buffer b;
    VkBufferView view;
    VkDescriptorSet set;
    uint32_t row0, rows;
} vk_chunk;

/* A tensor on the device (see backend_vulkan_repack.c for the layouts). */
typedef struct {
    int32_t index;       /* tensor index; -1: not uploaded */
    uint32_t type;
    int plain;           /* 1: a 1-D F32 weight as plain floats */
    uint32_t cols, rows;
    uint32_t units;      /* 32-value units per row, padded to whole groups */
    uint32_t row_texels;
    uint32_t n_chunks;
    vk_chunk *chunks;
} vk_tensor;

/* A model's weights on one device, shared by its contexts there. */
struct vk_weights {
    vk_weights *next;      /* device list (wlock) */
    const infer_model *model;
    int refs;              /* wlock */
    vk_tensor *tensors;    /* [n_tensors], by tensor index */
    size_t n_tensors;
    VkDescriptorPool pool;
};

/* ---- device (backend_vulkan_device.c) ----------------------------------- */

/* Get (create or share) the device: index >= 0 picks that device; -1 the
 * best one (discrete, integrated, virtual, then CPU); gpu_only refuses
 * CPU-type devices (lavapipe) for automatic offload. */
infer_status vk_dev_get(int index, int gpu_only, vk_dev **out, infer_error *err);
void vk_dev_put(vk_dev *d);
/* Turn a VkResult into INFER_EBACKEND with "what: VK_ERROR_..." */
infer_status vk_fail(infer_error *err, VkResult r, const char *what);
const char *vk_result_name(VkResult r);
/* Warnings and errors the validation layer has reported in this process
 * (0 when it is not enabled), and whether it is enabled on some device. */
uint64_t vk_validation_count(void);
int vk_validation_enabled(void);

/* ---- pipelines (backend_vulkan_pipe.c) ---------------------------------- */

infer_status vk_layouts_create(vk_dev *d, infer_error *err);
void vk_layouts_destroy(vk_dev *d);
/* The pipeline of shader `name` ("matmul_q4_0"; "_nosg" is appended when
 * the device does without subgroups) with spec constants 1..3 = spec[]
 * (spec constant 0 is the workgroup size); created once per device. */
infer_status vk_pipeline(vk_dev *d, const char *name, const uint32_t spec[3], VkPipeline *out, infer_error *err);
infer_status vk_pipeline_wide(vk_dev *d, const char *name, uint32_t wg, VkPipeline *out, infer_error *err);
uint32_t vk_mv_rows(const vk_dev *d, uint32_t type);
/* A shader that uses lane reductions (has a _nosg variant). */
int vk_shader_uses_lanes(const char *name);

/* ---- memory (backend_vulkan_mem.c) ------------------------------------- */

enum { VK_MEM_DEVICE = 0, VK_MEM_HOST = 1 };
infer_status vk_buffer_new(vk_dev *d, VkDeviceSize size, VkBufferUsageFlags usage, int where, vk_buffer *b,
                           infer_error *err);
void vk_buffer_free(vk_dev *d, vk_buffer *b);
infer_status vk_view_new(vk_dev *d, VkBuffer buf, VkFormat fmt, VkDeviceSize off, VkDeviceSize range,
                         VkBufferView *out, infer_error *err);
/* Submit one command buffer to the queue and wait (device lock taken).
 * *pending: 1 when it was submitted but is not known finished, or its
 * fence could not be reset: neither may be used again (wait for the
 * queue before destroying them). */
infer_status vk_submit_wait(vk_dev *d, VkCommandBuffer cb, VkFence fence, int *pending, infer_error *err);
/* The model's weights on d (uploaded on first use), one reference. */
infer_status vk_weights_get(vk_dev *d, const infer_model *m, vk_weights **out, infer_error *err);
void vk_weights_put(vk_dev *d, vk_weights *w);
const vk_tensor *vk_tensor_of(const vk_weights *w, const weight *wt);

/* ---- layouts (backend_vulkan_repack.c) --------------------------------- */

/* Units per row (padded to whole groups) and texels per row of a 2-D
 * weight of this type; INFER_EUNSUPPORTED for a type without a layout. */
infer_status vk_row_layout(uint32_t type, uint64_t cols, uint32_t *units, uint32_t *row_texels);
/* One row of cols values (GGUF bytes) into row_texels * 16 bytes. */
void vk_repack_row(uint32_t type, const uint8_t *src, uint64_t cols, uint8_t *dst);
/* The activation conversion mode for a weight type (quantize_act.comp). */
uint32_t vk_act_mode(uint32_t type);

/* ---- the backend (backend_vulkan.c, backend_vulkan_ops.c) --------------- */

typedef struct {
    vk_buffer b;          /* K [n_ctx][n_head_kv][hdk_pad], then V at v_off */
    VkDeviceSize v_off;
    VkBufferView kview, vview;
    VkDescriptorSet set;
} vk_layer_kv;

/* The pipelines a context uses. */
typedef struct {
    VkPipeline mv[INFER_TYPE_COUNT], mm[INFER_TYPE_COUNT], get_rows[INFER_TYPE_COUNT];
    VkPipeline quantize, rms_norm, rope, kv_store, attention, elementwise, kv_move;
} vk_pipes;

typedef struct {
    backend base;
    vk_dev *d;
    vk_weights *w;
    const infer_model *m;
    const model_hparams *hp;
    uint32_t n_ctx, n_batch, kv_type;
    uint32_t hdk_pad, hdv_pad;  /* head sizes padded to 4 */
    vk_buffer arena;            /* activations */
    size_t arena_floats;
    VkDeviceSize win;           /* bytes each dynamic binding covers */
    VkDeviceSize kv_win;
    vk_buffer upload;           /* ids, RoPE tables (host-visible) */
    size_t upload_words, upload_used;
    vk_buffer xq;               /* activations converted for a matmul */
    VkBufferView xq_view;
    size_t xq_units;            /* capacity in units of 36 words */
    vk_buffer readback;         /* the step's output (host-visible) */
    size_t rb_off, rb_count;    /* arena floats it holds; rb_count 0: none */
    vk_buffer demand;           /* other ranges host() is asked for */
    vk_layer_kv *kv;            /* [n_layer] */
    VkDescriptorPool pool;
    VkDescriptorSet set0;
    vk_buffer dummy;            /* set 1 for ops that take no weight */
    VkBufferView dummy_view;
    VkDescriptorSet dummy_set;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    int recording;
    int broken;                 /* a submission failed: its command buffer and fence may still be
                                   in use, so nothing more is recorded or submitted (a device
                                   error, e.g. VK_ERROR_DEVICE_LOST) */
    vk_pipes p;
    infer_status status;        /* first failure since the last sync */
    char msg[INFER_ERROR_MSG_MAX];
    size_t out_off, out_count;  /* what the last op wrote (arena floats) */
    struct {                    /* INFER_VK_PROFILE=1 */
        VkQueryPool pool;
        uint32_t used;
        const char *label[VK_PROF_QUERIES];
        const char *names[VK_PROF_OPS];
        double ns[VK_PROF_OPS];
        uint64_t count[VK_PROF_OPS], passes;
        int n;
    } prof;
    int table_valid;            /* a RoPE table for (table_pos0, table_n) is in U */
    uint32_t table_pos0, table_n;
    size_t table_off;
} vk_backend;

/* Latch the first failure (ops return void; sync reports it). */
void vkb_fail(vk_backend *v, infer_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Start recording if needed; 0 when the backend already failed. */
int vkb_begin(vk_backend *v);
extern const backend_ops VK_OPS_TABLE;
void vk_profile_report(vk_backend *v);

/* For tests: copy count floats into the arena at off (a separate
 * submission), and force small windows / weight chunks. */
infer_status backend_vulkan_write(backend *b, act off, const float *src, size_t count, infer_error *err);

#endif
