// Thin C module for oneDNN (Debian: libdnnl-dev, 2.x with the OpenMP CPU runtime): the C API plus
// typed helpers that build the few primitives a ResNet needs, so that the Swift side never fills
// oneDNN's descriptor structs itself.
#ifndef CSMIL_CDNNL_SHIM_H
#define CSMIL_CDNNL_SHIM_H
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>

/// The library's version as "major.minor.patch".
static inline void csmil_dnnl_version(int *major, int *minor, int *patch) {
    const dnnl_version_t *version = dnnl_version();
    *major = version->major;
    *minor = version->minor;
    *patch = version->patch;
}

/// Sets the number of OpenMP threads the calling thread's oneDNN primitives use (`omp_set_num_threads`,
/// a per-thread setting). oneDNN's OpenMP runtime (libgomp) is loaded with libdnnl; it is looked up
/// at run time so that csmil needs no OpenMP headers or link flags. Returns 0 when it is missing.
static inline int csmil_dnnl_set_thread_count(int count) {
    static void (*set)(int) = NULL;
    static int looked = 0;
    if (!looked) {
        set = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
        looked = 1;
    }
    if (!set) return 0;
    set(count);
    return 1;
}

/// A memory object that owns a buffer oneDNN allocates (`DNNL_MEMORY_ALLOCATE`, a macro Swift cannot import).
static inline dnnl_status_t csmil_dnnl_allocated_memory(
    dnnl_memory_t *memory, const dnnl_memory_desc_t *desc, dnnl_engine_t engine) {
    return dnnl_memory_create(memory, desc, engine, DNNL_MEMORY_ALLOCATE);
}

/// An in-order stream with the default flags.
static inline dnnl_status_t csmil_dnnl_stream(dnnl_stream_t *stream, dnnl_engine_t engine) {
    return dnnl_stream_create(stream, engine, dnnl_stream_default_flags);
}

/// An NHWC activation tensor of `batch` images of `side`×`side`×`channels`.
static inline dnnl_status_t csmil_dnnl_activation(
    dnnl_memory_desc_t *desc, dnnl_data_type_t type, int batch, int channels, int side) {
    dnnl_dims_t dims = {batch, channels, side, side};
    return dnnl_memory_desc_init_by_tag(desc, 4, dims, type, dnnl_nhwc);
}

/// Convolution weights as csmil stores them after folding BatchNorm: f32 [Cout][kh][kw][Cin].
static inline dnnl_status_t csmil_dnnl_folded_weights(
    dnnl_memory_desc_t *desc, int inChannels, int outChannels, int kernel) {
    dnnl_dims_t dims = {outChannels, inChannels, kernel, kernel};
    return dnnl_memory_desc_init_by_tag(desc, 4, dims, dnnl_f32, dnnl_ohwi);
}

/// A 1-D f32 vector of `count` values (biases), or of `count` bytes when `bytes` is set (scratchpads).
static inline dnnl_status_t csmil_dnnl_vector(dnnl_memory_desc_t *desc, int count, int bytes) {
    dnnl_dims_t dims = {count};
    return dnnl_memory_desc_init_by_tag(desc, 1, dims, bytes ? dnnl_u8 : dnnl_f32, dnnl_x);
}

/// What one primitive needs beside itself: its implementation's name and its scratchpad size.
static inline void csmil_dnnl_describe(const_dnnl_primitive_desc_t pd, const char **implementation,
    size_t *scratchpad) {
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, implementation) != dnnl_success)
        *implementation = "";
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    *scratchpad = pad ? dnnl_memory_desc_get_size(pad) : 0;
}

/// Makes the primitive of an operation descriptor with `attr` (its scratchpad mode set to user here; NULL: a
/// fresh one): the layout it wants its weights and its destination in (where asked), its implementation's name
/// and its scratchpad size.
static inline dnnl_status_t csmil_dnnl_make(const_dnnl_op_desc_t desc, dnnl_primitive_attr_t attr,
    dnnl_engine_t engine, dnnl_primitive_t *primitive, dnnl_memory_desc_t *weights,
    dnnl_memory_desc_t *destination, const char **implementation, size_t *scratchpad) {
    dnnl_status_t status;
    dnnl_primitive_attr_t own = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (!attr) {
        if ((status = dnnl_primitive_attr_create(&own))) return status;
        attr = own;
    }
    if ((status = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))) goto done;
    if ((status = dnnl_primitive_desc_create(&pd, desc, attr, engine, NULL))) goto done;
    if (weights) *weights = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (destination) *destination = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    csmil_dnnl_describe(pd, implementation, scratchpad);
    status = dnnl_primitive_create(primitive, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (own) dnnl_primitive_attr_destroy(own);
    return status;
}

/// A forward-inference convolution (padding `padding` on every side) from `source` into an NHWC
/// destination of `type`, with an f32 bias, then optionally the destination's previous contents
/// added (`sum`, the residual) and ReLU. Weights in whatever layout the implementation prefers:
/// `weights` receives it. The scratchpad is the caller's (user mode), so that one primitive can
/// run on several threads at once, each with its own.
static inline dnnl_status_t csmil_dnnl_convolution(
    dnnl_engine_t engine, dnnl_data_type_t type, const dnnl_memory_desc_t *source, int inChannels,
    int outChannels, int kernel, int stride, int padding, int sum, int relu, dnnl_primitive_t *primitive,
    dnnl_memory_desc_t *weights, dnnl_memory_desc_t *destination, const char **implementation,
    size_t *scratchpad) {
    dnnl_status_t status;
    int batch = (int)source->dims[0];
    int side = (int)source->dims[2];
    int out = (side + 2 * padding - kernel) / stride + 1;
    dnnl_memory_desc_t anyWeights, bias, dst;
    dnnl_dims_t weightDims = {outChannels, inChannels, kernel, kernel};
    if ((status = dnnl_memory_desc_init_by_tag(&anyWeights, 4, weightDims, type, dnnl_format_tag_any))) return status;
    if ((status = csmil_dnnl_vector(&bias, outChannels, 0))) return status;
    if ((status = csmil_dnnl_activation(&dst, type, batch, outChannels, out))) return status;
    dnnl_dims_t strides = {stride, stride}, pads = {padding, padding};
    dnnl_convolution_desc_t desc;
    if ((status = dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct,
             source, &anyWeights, &bias, &dst, strides, pads, pads)))
        return status;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    if ((status = dnnl_primitive_attr_create(&attr))) return status;
    if ((status = dnnl_post_ops_create(&ops))) goto done;
    if (sum && (status = dnnl_post_ops_append_sum(ops, 1.0f))) goto done;
    if (relu && (status = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f))) goto done;
    if ((status = dnnl_primitive_attr_set_post_ops(attr, ops))) goto done;
    status = csmil_dnnl_make(&desc, attr, engine, primitive, weights, destination, implementation, scratchpad);
done:
    if (ops) dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return status;
}

/// A forward-inference 3×3 stride-2 max pooling with padding 1 (torchvision ResNet's) from `source`
/// into an NHWC `destination` of the same type.
static inline dnnl_status_t csmil_dnnl_max_pool(
    dnnl_engine_t engine, const dnnl_memory_desc_t *source, dnnl_primitive_t *primitive,
    dnnl_memory_desc_t *destination, const char **implementation, size_t *scratchpad) {
    dnnl_status_t status;
    int side = (int)source->dims[2];
    int out = (side + 2 - 3) / 2 + 1;
    if ((status = csmil_dnnl_activation(destination, source->data_type, (int)source->dims[0],
             (int)source->dims[1], out)))
        return status;
    dnnl_dims_t strides = {2, 2}, kernel = {3, 3}, dilation = {0, 0}, pads = {1, 1};
    dnnl_pooling_v2_desc_t desc;
    if ((status = dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_max, source,
             destination, strides, kernel, dilation, pads, pads)))
        return status;
    return csmil_dnnl_make(&desc, NULL, engine, primitive, NULL, NULL, implementation, scratchpad);
}

/// A reorder (layout and/or type conversion) from `source` to `destination`.
static inline dnnl_status_t csmil_dnnl_reorder(
    dnnl_engine_t engine, const dnnl_memory_desc_t *source, const dnnl_memory_desc_t *destination,
    dnnl_primitive_t *primitive, size_t *scratchpad) {
    dnnl_status_t status;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const char *implementation;
    if ((status = dnnl_primitive_attr_create(&attr))) return status;
    if ((status = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))) goto done;
    if ((status = dnnl_reorder_primitive_desc_create(&pd, source, engine, destination, engine, attr))) goto done;
    csmil_dnnl_describe(pd, &implementation, scratchpad);
    status = dnnl_primitive_create(primitive, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return status;
}

/// The transformed filter of a Winograd F(4×4,3×3) convolution as csmil computes it, U[36][Cout][Cin] f32:
/// 36 matrices of `inChannels` × `outChannels` stored transposed.
static inline dnnl_status_t csmil_dnnl_winograd_filter(dnnl_memory_desc_t *desc, int inChannels, int outChannels) {
    dnnl_dims_t dims = {36, inChannels, outChannels};
    return dnnl_memory_desc_init_by_tag(desc, 3, dims, dnnl_f32, dnnl_acb);
}

/// The 36 products of a Winograd F(4×4,3×3) convolution as one batched f32 matmul: for each position,
/// V (`rows` tiles × `inChannels`, row-major, the matrices one after another) times U (`inChannels` ×
/// `outChannels`) into M (`rows` × `outChannels`, likewise). U's layout is the implementation's choice,
/// returned in `weights`, unless `weightsGiven` is set: then `weights` is the layout to use.
static inline dnnl_status_t csmil_dnnl_winograd_products(
    dnnl_engine_t engine, int rows, int inChannels, int outChannels, int weightsGiven, dnnl_memory_desc_t *weights,
    dnnl_primitive_t *primitive, dnnl_memory_desc_t *source, dnnl_memory_desc_t *destination,
    const char **implementation, size_t *scratchpad) {
    dnnl_status_t status;
    dnnl_dims_t sourceDims = {36, rows, inChannels}, weightDims = {36, inChannels, outChannels},
                destinationDims = {36, rows, outChannels};
    dnnl_memory_desc_t anyWeights;
    if ((status = dnnl_memory_desc_init_by_tag(source, 3, sourceDims, dnnl_f32, dnnl_abc))) return status;
    if ((status = dnnl_memory_desc_init_by_tag(destination, 3, destinationDims, dnnl_f32, dnnl_abc))) return status;
    if (weightsGiven) {
        anyWeights = *weights;
    } else if ((status = dnnl_memory_desc_init_by_tag(&anyWeights, 3, weightDims, dnnl_f32, dnnl_format_tag_any))) {
        return status;
    }
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, source, &anyWeights, NULL, destination))) return status;
    return csmil_dnnl_make(&desc, NULL, engine, primitive, weights, NULL, implementation, scratchpad);
}

/// Runs a matmul without bias. Returns when it is done.
static inline dnnl_status_t csmil_dnnl_run_matmul(
    dnnl_primitive_t primitive, dnnl_stream_t stream, dnnl_memory_t source, dnnl_memory_t weights,
    dnnl_memory_t destination, dnnl_memory_t scratchpad) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, source}, {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_DST, destination}, {DNNL_ARG_SCRATCHPAD, scratchpad}};
    dnnl_status_t status = dnnl_primitive_execute(primitive, stream, 4, args);
    return status ? status : dnnl_stream_wait(stream);
}

/// Runs a convolution: `bias` may be NULL for none. Returns when it is done.
static inline dnnl_status_t csmil_dnnl_run_convolution(
    dnnl_primitive_t primitive, dnnl_stream_t stream, dnnl_memory_t source, dnnl_memory_t weights,
    dnnl_memory_t bias, dnnl_memory_t destination, dnnl_memory_t scratchpad) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, source}, {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_DST, destination}, {DNNL_ARG_SCRATCHPAD, scratchpad}, {DNNL_ARG_BIAS, bias}};
    dnnl_status_t status = dnnl_primitive_execute(primitive, stream, bias ? 5 : 4, args);
    return status ? status : dnnl_stream_wait(stream);
}

/// Runs a primitive of one source and one destination (pooling, reorder). Returns when it is done.
static inline dnnl_status_t csmil_dnnl_run(
    dnnl_primitive_t primitive, dnnl_stream_t stream, dnnl_memory_t source, dnnl_memory_t destination,
    dnnl_memory_t scratchpad) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, source}, {DNNL_ARG_DST, destination},
        {DNNL_ARG_SCRATCHPAD, scratchpad}};
    dnnl_status_t status = dnnl_primitive_execute(primitive, stream, 3, args);
    return status ? status : dnnl_stream_wait(stream);
}
#endif
