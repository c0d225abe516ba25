/*
 * vmath_body.h — the one body of vmath.c's functions, included once per
 * instruction set with these macros defined (no include guard on purpose;
 * it undefines them at its end):
 *
 *   VF, VM, VW        vector of floats, comparison mask, lanes
 *   TARGET            function attribute enabling the instruction set
 *   SFX(name)         name##_<isa>
 *   V_LOAD V_STORE V_SET1 V_ADD V_SUB V_MUL V_DIV V_FMA(a, b, c) = a*b + c
 *   V_MIN V_MAX       NaN in the first operand gives the second (as x86)
 *   V_AND V_OR V_ABS  bitwise; V_ABS clears the sign
 *   V_ROUND           to nearest integer (|x| < 2^22)
 *   V_POW2I(n)        2^n for integral n in [-126, 127]
 *   V_SCALEF(y, n)    optional: y * 2^n rounded once, for integral n
 *   V_LT V_ISNAN      masks; V_SELECT(m, a, b) = m ? a : b
 *   VDACC V_DACC_ZERO V_DACC_ADD(acc, v) V_DACC_SUM(acc)
 *                     a sum of float vectors kept in double lanes
 *
 * The approximations (coefficients fitted in double, then checked in float
 * by tests/engine/kernels/test_vmath.c):
 *   exp      x = n ln2 + r, |r| <= ln2/2 (ln2 split in two for exactness),
 *            e^r by Cephes' degree-7 polynomial, 2^n applied as two factors so
 *            overflow and gradual underflow round once, like libm (AVX-512's
 *            scalef does the same in one instruction).
 *   sigmoid  e = exp(-|x|): 1/(1+e) for x >= 0, e/(1+e) for x < 0, so
 *            neither tail cancels.
 *   tanh     |x| < 0.55: x + x^3 P(x^2) (degree-4 least-max fit); else
 *            1 - 2/(exp(2|x|)+1) with x's sign (no cancellation: the result
 *            is >= 0.5 there).
 *   erf      |x| < 0.921875: x + x Q(x^2) (degree 6); else
 *            1 - exp(R(|x|)), R a degree-8 fit of log(erfc) on [0.92, 4];
 *            erfc(4) < half an ulp of 1, so |x| >= 4 rounds to exactly 1.
 */

#define TANH_SMALL 0.55f
#define ERF_SPLIT 0.921875f
#define ERF_LAST 4.0f

/* e^x without the NaN fix-up (callers that feed derived values apply it
 * once to their own result). */
TARGET static inline VF SFX(exp_core)(VF x)
{
    VF xc = V_MIN(V_MAX(x, V_SET1(-104.0f)), V_SET1(88.8f));
    VF n = V_ROUND(V_MUL(xc, V_SET1(1.44269504088896341f)));
    VF r = V_FMA(n, V_SET1(-0.693359375f), xc);
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    VF p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    VF y = V_ADD(V_FMA(p, V_MUL(r, r), r), V_SET1(1.0f));
#ifdef V_SCALEF
    return V_SCALEF(y, n);
#else
    /* n is in [-150, 128]: halves in [-75, 64] are both normal scales */
    VF n1 = V_ROUND(V_MUL(n, V_SET1(0.5f)));
    return V_MUL(V_MUL(y, V_POW2I(n1)), V_POW2I(V_SUB(n, n1)));
#endif
}

TARGET static inline VF SFX(exp_v)(VF x)
{
    return V_SELECT(V_ISNAN(x), x, SFX(exp_core)(x));
}

TARGET static inline VF SFX(sigmoid_v)(VF x)
{
    VF neg_abs = V_OR(x, V_SET1(-0.0f));
    VF e = SFX(exp_core)(neg_abs);
    VF num = V_SELECT(V_LT(x, V_SET1(0.0f)), e, V_SET1(1.0f));
    VF y = V_DIV(num, V_ADD(V_SET1(1.0f), e));
    return V_SELECT(V_ISNAN(x), x, y);
}

TARGET static inline VF SFX(tanh_v)(VF x)
{
    VF sign = V_AND(x, V_SET1(-0.0f));
    VF ax = V_ABS(x);
    VF e = SFX(exp_core)(V_ADD(ax, ax));
    VF big = V_SUB(V_SET1(1.0f), V_DIV(V_SET1(2.0f), V_ADD(e, V_SET1(1.0f))));
    big = V_OR(big, sign);
    VF u = V_MUL(x, x);
    VF p = V_SET1(-0.006627488415688276f);
    p = V_FMA(p, u, V_SET1(0.021320180967450142f));
    p = V_FMA(p, u, V_SET1(-0.053911592811346054f));
    p = V_FMA(p, u, V_SET1(0.1333312839269638f));
    p = V_FMA(p, u, V_SET1(-0.3333333134651184f));
    /* on |x| with the sign put back, so that tanh(-0) = -0 */
    VF small = V_OR(V_FMA(V_MUL(ax, u), p, ax), sign);
    VF y = V_SELECT(V_LT(ax, V_SET1(TANH_SMALL)), small, big);
    return V_SELECT(V_ISNAN(x), x, y);
}

/* erf(|x|) and erfc(|x|) for |x| >= ERF_SPLIT (clamped to ERF_LAST). */
TARGET static inline VF SFX(erfc_big)(VF ax)
{
    VF c = V_MIN(ax, V_SET1(ERF_LAST));
    VF q = V_SET1(1.6026733646867797e-06f);
    q = V_FMA(q, c, V_SET1(-4.535814514383674e-05f));
    q = V_FMA(q, c, V_SET1(0.0005907447193749249f));
    q = V_FMA(q, c, V_SET1(-0.004730417393147945f));
    q = V_FMA(q, c, V_SET1(0.02633591741323471f));
    q = V_FMA(q, c, V_SET1(-0.10992583632469177f));
    q = V_FMA(q, c, V_SET1(-0.6319946646690369f));
    q = V_FMA(q, c, V_SET1(-1.1301318407058716f));
    q = V_FMA(q, c, V_SET1(0.0002943698491435498f));
    return SFX(exp_core)(q);
}

/* x + x Q(x^2): erf for |x| < ERF_SPLIT. */
TARGET static inline VF SFX(erf_small)(VF x)
{
    VF u = V_MUL(x, x);
    VF q = V_SET1(8.398548379773274e-05f);
    q = V_FMA(q, u, V_SET1(-0.0008149986388161778f));
    q = V_FMA(q, u, V_SET1(0.005201732274144888f));
    q = V_FMA(q, u, V_SET1(-0.02685970813035965f));
    q = V_FMA(q, u, V_SET1(0.11283701658248901f));
    q = V_FMA(q, u, V_SET1(-0.37612634897232056f));
    q = V_FMA(q, u, V_SET1(0.12837916612625122f));
    return V_FMA(x, q, x);
}

TARGET static inline VF SFX(erf_v)(VF x)
{
    VF ax = V_ABS(x);
    VF big = V_SUB(V_SET1(1.0f), SFX(erfc_big)(ax));
    big = V_OR(big, V_AND(x, V_SET1(-0.0f)));
    VF y = V_SELECT(V_LT(ax, V_SET1(ERF_SPLIT)), SFX(erf_small)(x), big);
    return V_SELECT(V_ISNAN(x), x, y);
}

TARGET static inline VF SFX(gelu_v)(VF x)
{
    VF z = V_MUL(x, V_SET1(0.70710678118654752440f));
    VF az = V_ABS(z);
    VF tail = SFX(erfc_big)(az); /* erfc(|z|) */
    /* 1 + erf(z): 2 - erfc(z) above, erfc(|z|) itself below, 0 past -4 */
    VF above = V_SUB(V_SET1(2.0f), tail);
    VF below = V_SELECT(V_LT(az, V_SET1(ERF_LAST)), tail, V_SET1(0.0f));
    VF one_plus = V_SELECT(V_LT(z, V_SET1(0.0f)), below, above);
    one_plus = V_SELECT(V_LT(az, V_SET1(ERF_SPLIT)), V_ADD(V_SET1(1.0f), SFX(erf_small)(z)),
                        one_plus);
    VF y = V_MUL(V_MUL(V_SET1(0.5f), x), one_plus);
    return V_SELECT(V_ISNAN(x), x, y);
}

/* Array drivers: whole vectors, then the tail through a padded buffer. */
#define VMATH_ARRAY(fn)                                                                            \
    TARGET static void SFX(fn##_array)(const float *x, float *y, size_t n)                        \
    {                                                                                              \
        size_t i = 0;                                                                              \
        for (; i + VW <= n; i += VW)                                                               \
            V_STORE(y + i, SFX(fn##_v)(V_LOAD(x + i)));                                            \
        if (i < n) {                                                                               \
            float buf[VW] = {0};                                                                   \
            memcpy(buf, x + i, (n - i) * sizeof(float));                                           \
            V_STORE(buf, SFX(fn##_v)(V_LOAD(buf)));                                                \
            memcpy(y + i, buf, (n - i) * sizeof(float));                                           \
        }                                                                                          \
    }
VMATH_ARRAY(exp)
VMATH_ARRAY(sigmoid)
VMATH_ARRAY(tanh)
VMATH_ARRAY(erf)
VMATH_ARRAY(gelu)
#undef VMATH_ARRAY

TARGET static double SFX(exp_shifted_sum)(const float *x, float *y, size_t n, float shift)
{
    VF s = V_SET1(shift);
    VDACC acc = V_DACC_ZERO;
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        VF e = SFX(exp_v)(V_SUB(V_LOAD(x + i), s));
        V_STORE(y + i, e);
        V_DACC_ADD(acc, e);
    }
    if (i < n) {
        /* Padding lanes hold the shift itself and are zeroed before the
         * sum. They held -inf once, whose e^-104 underflows: on x86 each
         * vector product that underflows takes a microcode assist of ~150
         * cycles, which made the ten-class Softmax of the digits MLP 10% of
         * its run at batch 4. The sum is the same: those lanes added 0. */
        float buf[VW], lane[VW];
        for (size_t k = 0; k < VW; k++) {
            buf[k] = i + k < n ? x[i + k] : shift;
            lane[k] = (float)k;
        }
        VF e = SFX(exp_v)(V_SUB(V_LOAD(buf), s));
        V_STORE(buf, e);
        memcpy(y + i, buf, (n - i) * sizeof(float));
        V_DACC_ADD(acc, V_SELECT(V_LT(V_LOAD(lane), V_SET1((float)(n - i))), e, V_SET1(0.0f)));
    }
    return V_DACC_SUM(acc);
}

/* One Softmax row: the max a vector at a time (a serial compare per
 * element was as slow as the exponentials), then exp_shifted_sum, then one
 * scale. A NaN that V_MAX skips still makes its exponential, the sum and so
 * the whole row NaN. */
TARGET static void SFX(softmax)(const float *x, float *y, size_t n)
{
    if (n == 0)
        return;
    float max = x[0];
    size_t i = 0;
    if (n >= VW) {
        VF m = V_LOAD(x);
        for (i = VW; i + VW <= n; i += VW)
            m = V_MAX(m, V_LOAD(x + i));
        float lanes[VW];
        V_STORE(lanes, m);
        for (size_t k = 0; k < VW; k++)
            max = lanes[k] > max ? lanes[k] : max;
    }
    for (; i < n; i++)
        max = x[i] > max ? x[i] : max;
    float scale = (float)(1.0 / SFX(exp_shifted_sum)(x, y, n, max));
    VF vs = V_SET1(scale);
    for (i = 0; i + VW <= n; i += VW)
        V_STORE(y + i, V_MUL(V_LOAD(y + i), vs));
    for (; i < n; i++)
        y[i] *= scale;
}

#ifdef V_FIRST_LANES
/* A row of at most 2 VW floats in registers: a whole vector when it is
 * longer than one, then a masked one. Through the loops above a ten-class
 * row took ~70 ns (its tail assembled in buffers, a scalar max and scale):
 * a quarter of the digits MLP's run at batch 64. The same operations in the
 * same order, so the same bits: lanes past the row hold the max, whose
 * exponential is zeroed before the sum, as in exp_shifted_sum's tail. */
TARGET static inline void SFX(softmax_short)(const float *x, float *y, size_t n)
{
    size_t whole = n > VW ? VW : 0;
    VLANES lanes = V_FIRST_LANES(n - whole);
    VF v = V_LOAD_LANES(lanes, x + whole);
    float max = V_MAX_LANES(lanes, v);
    VF first = V_SET1(0.0f);
    if (whole) {
        first = V_LOAD(x);
        float m = V_MAX_LANES(V_FIRST_LANES(VW), first);
        max = m > max ? m : max;
    }
    VF s = V_SET1(max);
    VF e = V_ZERO_OTHER_LANES(lanes, SFX(exp_v)(V_SUB(V_KEEP_LANES(lanes, v, s), s)));
    VDACC acc = V_DACC_ZERO;
    if (whole) {
        first = SFX(exp_v)(V_SUB(first, s));
        V_DACC_ADD(acc, first);
    }
    V_DACC_ADD(acc, e);
    VF scale = V_SET1((float)(1.0 / V_DACC_SUM(acc)));
    if (whole)
        V_STORE(y, V_MUL(first, scale));
    V_STORE_LANES(y + whole, lanes, V_MUL(e, scale));
}
#endif

TARGET static void SFX(softmax_rows)(const float *x, float *y, size_t rows, size_t n)
{
#ifdef V_FIRST_LANES
    if (n >= 1 && n <= 2 * VW) {
        for (size_t r = 0; r < rows; r++)
            SFX(softmax_short)(x + r * n, y + r * n, n);
        return;
    }
#endif
    for (size_t r = 0; r < rows; r++)
        SFX(softmax)(x + r * n, y + r * n, n);
}

static const vmath_impl SFX(impl) = {
    SFX(exp_array), SFX(sigmoid_array), SFX(tanh_array),
    SFX(erf_array), SFX(gelu_array),    SFX(exp_shifted_sum),
    SFX(softmax_rows),
};

/* each includer defines these afresh for its instruction set */
#undef VF
#undef VM
#undef VW
#undef TARGET
#undef SFX
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_FMA
#undef V_MIN
#undef V_MAX
#undef V_AND
#undef V_OR
#undef V_ABS
#undef V_ROUND
#undef V_POW2I
#undef V_SCALEF
#undef V_LT
#undef V_ISNAN
#undef V_SELECT
#undef VDACC
#undef V_DACC_ZERO
#undef V_DACC_ADD
#undef V_DACC_SUM
#undef VLANES
#undef V_FIRST_LANES
#undef V_LOAD_LANES
#undef V_STORE_LANES
#undef V_MAX_LANES
#undef V_KEEP_LANES
#undef V_ZERO_OTHER_LANES
