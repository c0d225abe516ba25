/*
 * ops/elementwise_kernels.h — machinery shared by the element-wise operator
 * families (elementwise.c, activation.c, logical.c, cast.c).
 *
 * Kernels work on one "row": a run of output elements along the innermost
 * (collapsed) axis, where each input either advances with the output or
 * stays on one element (a broadcast scalar). The walker in elementwise.c
 * collapses the broadcast shapes so that the common cases — same shapes, a
 * scalar operand, a bias over the last axis, a per-channel operand — become
 * few long rows that the compiler vectorises. float16 and bfloat16 have no
 * kernels of their own: the drivers convert blocks to float32, run the
 * float32 kernel and convert back. Kernels are instantiated per dtype from one
 * body with the X-macro type lists below.
 */
#ifndef INFERD_ENGINE_OPS_ELEMENTWISE_KERNELS_H
#define INFERD_ENGINE_OPS_ELEMENTWISE_KERNELS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../op.h"

/* One slot per ifd_dtype value (IFD_BFLOAT16 is the largest). */
#define EW_DTYPE_SLOTS 17
/* Tensors at least this large are split over the session's threads. */
#define EW_PARALLEL_MIN ((size_t)1 << 16)
#define EW_PARALLEL_GRAIN ((size_t)1 << 14)
/* float16/bfloat16 are converted through float32 blocks of this many items. */
#define EW_HALF_BLOCK 512

/*
 * Type lists: X(arg, DTYPE, C type, suffix, KIND, W). KIND is F (floating),
 * S (signed) or U (unsigned); W is the type wrapping integer arithmetic is
 * done in (unsigned, so overflow is defined), and T itself for floats.
 */
#define EW_FLOAT_TYPES(X, a)                                                                       \
    X(a, IFD_FLOAT, float, f32, F, float)                                                          \
    X(a, IFD_DOUBLE, double, f64, F, double)
#define EW_SIGNED_TYPES(X, a)                                                                      \
    X(a, IFD_INT8, int8_t, i8, S, uint32_t)                                                        \
    X(a, IFD_INT16, int16_t, i16, S, uint32_t)                                                     \
    X(a, IFD_INT32, int32_t, i32, S, uint32_t)                                                     \
    X(a, IFD_INT64, int64_t, i64, S, uint64_t)
#define EW_UNSIGNED_TYPES(X, a)                                                                    \
    X(a, IFD_UINT8, uint8_t, u8, U, uint32_t)                                                      \
    X(a, IFD_UINT16, uint16_t, u16, U, uint32_t)                                                   \
    X(a, IFD_UINT32, uint32_t, u32, U, uint32_t)                                                   \
    X(a, IFD_UINT64, uint64_t, u64, U, uint64_t)
#define EW_INT_TYPES(X, a) EW_SIGNED_TYPES(X, a) EW_UNSIGNED_TYPES(X, a)
#define EW_SIGNED_NUMERIC_TYPES(X, a) EW_FLOAT_TYPES(X, a) EW_SIGNED_TYPES(X, a)
#define EW_NUMERIC_TYPES(X, a) EW_FLOAT_TYPES(X, a) EW_INT_TYPES(X, a)

/* Row modes: bit i is set when input i advances along the row. */
#define EW_A_VEC 1u
#define EW_B_VEC 2u
#define EW_C_VEC 4u

/* Scalar attributes of activations and friends, fixed at prepare. */
typedef struct ew_params {
    double alpha, beta, gamma;
    unsigned char lo[8], hi[8]; /* Clip bounds, stored as the kernel's element type */
    int detect_negative, detect_positive;
} ew_params;

typedef void (*ew_unary_fn)(const void *x, void *y, size_t n, const ew_params *p);
typedef void (*ew_binary_fn)(const void *a, const void *b, void *out, size_t n, unsigned mode);

/* Kernels of one operator indexed by dtype; the float16/bfloat16 slots hold
 * the float32 kernel. out_bool: the output is bool, not the input dtype. */
typedef struct ew_unary_op {
    ew_unary_fn fns[EW_DTYPE_SLOTS];
    bool out_bool;
} ew_unary_op;

typedef struct ew_binary_op {
    ew_binary_fn fns[EW_DTYPE_SLOTS];
    bool out_bool;
    bool integer_divisor; /* integer kernels divide by b: zeros are a run error */
} ew_binary_op;

/* Row callback of the walker: in[i] points at input i's first element of the
 * row, out at the output's; mode says which inputs advance. */
typedef void (*ew_row_fn)(void *arg, const void *const *in, void *out, size_t n, unsigned mode);

#define EW_MAX_OPERANDS 3

/* A broadcast of up to three inputs into one output, with the shapes
 * collapsed into as few axes as possible. */
typedef struct ew_walk {
    int n_in;
    int rank; /* >= 1 after collapsing */
    int64_t dims[IFD_MAX_RANK];
    int64_t strides[EW_MAX_OPERANDS][IFD_MAX_RANK]; /* in elements, 0 on broadcast axes */
    size_t count;                                   /* output elements */
    const char *in[EW_MAX_OPERANDS];
    size_t in_size[EW_MAX_OPERANDS]; /* element sizes in bytes */
    char *out;
    size_t out_size;
    ew_row_fn row;
    void *arg;
} ew_walk;

/* Plan the walk of inputs in[0..n_in) (their own shapes) into out (whose
 * shape each must broadcast to). false when one does not. */
bool ew_walk_init(ew_walk *w, const ifd_tensor *out, int n_in, const ifd_tensor *const *in,
                  ew_row_fn row, void *arg);
/* Run the walk, over the session's threads when it is large and parallel. */
void ew_walk_run(op_ctx *ctx, const ew_walk *w, bool parallel);

/* out = op(a, b) with numpy broadcasting of a and b into out's shape (which
 * the caller allocated). -1 with the run error set on a shape mismatch or a
 * dtype op has no kernel for. */
int ew_binary_apply(op_ctx *ctx, const ew_binary_op *op, const ifd_tensor *a, const ifd_tensor *b,
                    ifd_tensor *out);
/* y = op(x) elementwise; y has x's shape. */
int ew_unary_apply(op_ctx *ctx, const ew_unary_op *op, const ew_params *p, const ifd_tensor *x,
                   ifd_tensor *y);

/* float16/bfloat16 blocks to and from float32. */
void ew_half_to_float(ifd_dtype dtype, const uint16_t *src, float *dst, size_t n);
void ew_float_to_half(ifd_dtype dtype, const float *src, uint16_t *dst, size_t n);

/* Load-time shape inference of a numpy broadcast over n value_infos (unknown
 * rank or dims give unknown results). -1 with err set when known dims clash. */
int ew_infer_broadcast(const op_node *node, ifd_error *err, int n, value_info *const *in,
                       value_info *out);
/* Numpy broadcast of the shapes of n tensors into (rank, dims); false when
 * they are incompatible. */
bool ew_broadcast_tensors(int n, const ifd_tensor *const *in, int *rank, int64_t *dims);

/* The shape an input of old-style (opset < 7) broadcasting takes so that
 * numpy broadcasting reproduces it: B's dims are aligned with A's starting at
 * `axis`, or with A's trailing dims when axis < 0. */
bool ew_legacy_shape(int rank_a, int rank_b, const int64_t *dims_b, int64_t axis, int *rank,
                     int64_t *dims);

/* float32 kernels get an AVX2 clone chosen when the library loads (an ifunc),
 * so the engine still runs on any x86-64 while the transcendental
 * approximations run about twice as fast where AVX2 exists. Other dtypes
 * and toolchains without target_clones get the one baseline build. */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define EW_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef EW_VECTOR_CLONES
#define EW_VECTOR_CLONES
#endif
#define EW_CLONES_f32 EW_VECTOR_CLONES
#define EW_CLONES_f64
#define EW_CLONES_i8
#define EW_CLONES_i16
#define EW_CLONES_i32
#define EW_CLONES_i64
#define EW_CLONES_u8
#define EW_CLONES_u16
#define EW_CLONES_u32
#define EW_CLONES_u64

/* Kernel bodies. EXPR computes one element from x (and y) of type T; the
 * instantiation macros below paste an op's per-KIND expression macro
 * (e.g. Add_F(T, W, x, y)) into them. */
#define EW_DEFINE_BINARY(name, T, OT, EXPR) EW_DEFINE_BINARY_ATTR(, name, T, OT, EXPR)
#define EW_DEFINE_BINARY_ATTR(attr, name, T, OT, EXPR)                                             \
    attr static void name(const void *va, const void *vb, void *vo, size_t n, unsigned mode)       \
    {                                                                                              \
        const T *restrict a_ = va;                                                                 \
        const T *restrict b_ = vb;                                                                 \
        OT *restrict o_ = vo;                                                                      \
        if (mode == (EW_A_VEC | EW_B_VEC)) {                                                       \
            for (size_t i = 0; i < n; i++) {                                                       \
                const T x = a_[i];                                                                 \
                const T y = b_[i];                                                                 \
                (void)y;                                                                           \
                o_[i] = (OT)(EXPR);                                                                \
            }                                                                                      \
        } else if (mode == EW_A_VEC) {                                                             \
            const T y = b_[0];                                                                     \
            (void)y;                                                                               \
            for (size_t i = 0; i < n; i++) {                                                       \
                const T x = a_[i];                                                                 \
                o_[i] = (OT)(EXPR);                                                                \
            }                                                                                      \
        } else {                                                                                   \
            const T x = a_[0];                                                                     \
            for (size_t i = 0; i < n; i++) {                                                       \
                const T y = b_[i];                                                                 \
                (void)y;                                                                           \
                o_[i] = (OT)(EXPR);                                                                \
            }                                                                                      \
        }                                                                                          \
    }

/* PT is the type the float parameters are used in: T for floats, double for
 * integer kernels. */
#define EW_DEFINE_UNARY(name, T, OT, PT, EXPR) EW_DEFINE_UNARY_ATTR(, name, T, OT, PT, EXPR)
#define EW_DEFINE_UNARY_ATTR(attr, name, T, OT, PT, EXPR)                                          \
    attr static void name(const void *vx, void *vy, size_t n, const ew_params *p)                  \
    {                                                                                              \
        const T *restrict x_ = vx;                                                                 \
        OT *restrict y_ = vy;                                                                      \
        const PT alpha = (PT)p->alpha, beta = (PT)p->beta, gamma = (PT)p->gamma;                   \
        (void)alpha;                                                                               \
        (void)beta;                                                                                \
        (void)gamma;                                                                               \
        for (size_t i = 0; i < n; i++) {                                                           \
            const T x = x_[i];                                                                     \
            y_[i] = (OT)(EXPR);                                                                    \
        }                                                                                          \
    }

#define EW_PT_F(T) T
#define EW_PT_S(T) double
#define EW_PT_U(T) double

/* Instantiate op's kernel for one entry of a type list. */
#define EW_BINARY_INST(op, DT, T, SFX, KIND, W)                                                    \
    EW_DEFINE_BINARY_ATTR(EW_CLONES_##SFX, op##_##SFX, T, T, op##_##KIND(T, W, x, y))
#define EW_BINARY_BOOL_INST(op, DT, T, SFX, KIND, W)                                               \
    EW_DEFINE_BINARY_ATTR(EW_CLONES_##SFX, op##_##SFX, T, uint8_t, op##_##KIND(T, W, x, y))
#define EW_UNARY_INST(op, DT, T, SFX, KIND, W)                                                     \
    EW_DEFINE_UNARY_ATTR(EW_CLONES_##SFX, op##_##SFX, T, T, EW_PT_##KIND(T), op##_##KIND(T, W, x))
#define EW_UNARY_BOOL_INST(op, DT, T, SFX, KIND, W)                                                \
    EW_DEFINE_UNARY_ATTR(EW_CLONES_##SFX, op##_##SFX, T, uint8_t, EW_PT_##KIND(T),                 \
                         op##_##KIND(T, W, x))
/* Table entries: [dtype] = kernel; float16/bfloat16 run the float32 kernel. */
#define EW_SLOT(op, DT, T, SFX, KIND, W) [DT] = op##_##SFX,
#define EW_HALF_SLOTS(op) [IFD_FLOAT16] = op##_f32, [IFD_BFLOAT16] = op##_f32,

/*
 * Node-level helpers shared by the families. Prepare functions allocate an
 * ew_node_state (freed with free) and fill in the output's type and shape.
 */
typedef struct ew_node_state {
    const ew_unary_op *unary;
    const ew_binary_op *binary;
    ew_params params;
    /* opset < 7 broadcasting: -1 numpy (opset >= 7); 0 shapes must match;
     * 1 B broadcasts into A, aligned at legacy_axis when has_axis. */
    int legacy_broadcast;
    bool has_axis;
    int64_t legacy_axis;
    int64_t extra; /* family-specific (Cast's target dtype, ...) */
} ew_node_state;

ew_node_state *ew_state_new(op_node *node, ifd_error *err);
/* Two inputs of one dtype through op. Versions < 7 read the old broadcast
 * and axis attributes. */
int ew_binary_node_prepare(op_node *node, ifd_error *err, const ew_binary_op *op);
int ew_binary_node_run(op_ctx *ctx);
/* One input through op with the given parameters. */
int ew_unary_node_prepare(op_node *node, ifd_error *err, const ew_unary_op *op,
                          const ew_params *params);
int ew_unary_node_run(op_ctx *ctx);
/* Inputs of opset < 7 broadcasting: b_view becomes B reshaped for numpy
 * broadcasting against A, or -1 with the run error set. */
int ew_legacy_view(op_ctx *ctx, const ew_node_state *s, const ifd_tensor *a, const ifd_tensor *b,
                   ifd_tensor *b_view);

/* Saturating float -> int64 with NaN -> 0: converting a NaN or out-of-range
 * float to an integer type is undefined in C. */
static inline int64_t ew_double_to_int64(double v)
{
    if (v != v)
        return 0;
    if (v >= 9223372036854775808.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

static inline uint64_t ew_double_to_uint64(double v)
{
    if (v != v)
        return 0;
    if (v >= 18446744073709551616.0)
        return UINT64_MAX;
    if (v < 0.0) /* like numpy and x86: through int64, wrapping */
        return (uint64_t)ew_double_to_int64(v);
    return (uint64_t)v;
}

/*
 * float32 approximations of exp, tanh and erf without branches or libm calls,
 * so that loops over them vectorise. Each is within a few ulp of the
 * correctly rounded result (checked against double precision), keeps NaN
 * and handles infinities. The approaches are those of Cephes (exp) and
 * Eigen's rational approximations (tanh, erf), which ONNX Runtime uses too.
 */
static inline uint32_t ew_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float ew_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* cond ? a : b through bit masks. GCC (with its default -ftrapping-math)
 * does not if-convert a float ?: whose arms it can fold differently, which
 * keeps the whole loop scalar; this form always vectorises. */
static inline float ew_selectf(int cond, float a, float b)
{
    uint32_t mask = (uint32_t)0 - (uint32_t)(cond != 0);
    return ew_bits_f32((ew_f32_bits(a) & mask) | (ew_f32_bits(b) & ~mask));
}

static inline double ew_selectd(int cond, double a, double b)
{
    uint64_t mask = (uint64_t)0 - (uint64_t)(cond != 0), ua, ub;
    memcpy(&ua, &a, sizeof(ua));
    memcpy(&ub, &b, sizeof(ub));
    ua = (ua & mask) | (ub & ~mask);
    memcpy(&a, &ua, sizeof(a));
    return a;
}

/* Type-generic select for kernel bodies instantiated for float and double. */
#define EW_SELECT(cond, a, b)                                                                      \
    _Generic((a), float : ew_selectf, default : ew_selectd)((cond), (a), (b))

static inline float ew_expf(float x)
{
    /* x = k ln2 + r with |r| <= ln2/2; e^r by Cephes' polynomial; 2^k applied
     * as two factors so overflow to infinity and gradual underflow are exact.
     * Adding 1.5*2^23 rounds to an integer kept in the low mantissa bits,
     * which avoids a float->int conversion (undefined for NaN). */
    const float magic = 12582912.0f;
    x = ew_selectf(x < -104.0f, -104.0f, x);
    x = ew_selectf(x > 89.0f, 89.0f, x);
    float t = x * 1.44269504088896341f + magic;
    float k = t - magic;
    int32_t ki = (int32_t)(ew_f32_bits(t) - ew_f32_bits(magic));
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.0f;
    int32_t k1 = ki / 2;
    int32_t k2 = ki - k1;
    float s1 = ew_bits_f32((uint32_t)(k1 + 127) << 23);
    float s2 = ew_bits_f32((uint32_t)(k2 + 127) << 23);
    return y * s1 * s2;
}

static inline float ew_tanhf(float x)
{
    /* Odd 13/6 rational approximation on [-7.9, 7.9]; beyond it tanh is 1 in
     * float32; below 4e-4 tanh(x) == x to float precision. */
    const float bound = 7.90531110763549805f;
    float c = ew_selectf(x > bound, bound, x);
    c = ew_selectf(c < -bound, -bound, c);
    float x2 = c * c;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * c;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float y = p / q;
    return ew_selectf(fabsf(x) < 0.0004f, x, y);
}

static inline float ew_sigmoidf(float x)
{
    return 1.0f / (1.0f + ew_expf(-x));
}

static inline float ew_erff(float x)
{
    /* Odd 13/8 rational approximation on [-4, 4]; erf is +-1 in float32
     * beyond. */
    float c = ew_selectf(x > 4.0f, 4.0f, x);
    c = ew_selectf(c < -4.0f, -4.0f, c);
    float x2 = c * c;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * c;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

#endif /* INFERD_ENGINE_OPS_ELEMENTWISE_KERNELS_H */
