/*
 * lstm_cell_body.h — the one body of lstm_cell.c, included once per
 * instruction set with these macros defined (no include guard on purpose; it
 * undefines them at its end), the vmath_body.h scheme:
 *
 *   VF VW TARGET SFX(name)      vector type, lanes, target attribute, suffix
 *   V_LOAD V_STORE V_SET1 V_ADD V_SUB V_MUL V_FMA(a, b, c) = a*b + c
 *   V_MIN V_MAX (NaN in the first operand gives the second)
 *   V_AND V_OR V_ABS  V_ROUND  V_POW2I(n) = 2^n, n in [-126, 0]
 *   V_RCP(d)    1/d for d in [1, 2] to within an ulp or two
 *   V_SELECT_LT(a, b, x, y) = a < b ? x : y   V_SELECT_NAN(v, x, y) = v is NaN ? x : y
 *
 * exp(z) for z <= 0 is vmath_body.h's (Cephes' degree-7 polynomial on
 * z - n ln2), clamped at -87 so that 2^n is one normal scale; sigmoid is
 * 1/(1+e) or e/(1+e) with e = exp(-|x|), so neither tail cancels; tanh is
 * x + x^3 P(x^2) below 0.55 and (1-e)/(1+e) with e = exp(-2|x|) above, where
 * it is at least 0.5 and nothing cancels either.
 */

TARGET static inline VF SFX(exp_neg)(VF z) /* z <= 0, NaN -> garbage (callers fix up) */
{
    VF zc = V_MAX(z, V_SET1(-87.0f));
    VF n = V_ROUND(V_MUL(zc, V_SET1(1.44269504088896341f)));
    VF r = V_FMA(n, V_SET1(-0.693359375f), zc);
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    VF p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    VF y = V_ADD(V_FMA(p, V_MUL(r, r), r), V_SET1(1.0f));
    return V_MUL(y, V_POW2I(n));
}

TARGET static inline VF SFX(sigmoid)(VF x)
{
    VF e = SFX(exp_neg)(V_OR(x, V_SET1(-0.0f))); /* exp(-|x|) */
    VF r = V_RCP(V_ADD(V_SET1(1.0f), e));
    VF y = V_SELECT_LT(x, V_SET1(0.0f), V_MUL(e, r), r);
    return V_SELECT_NAN(x, x, y);
}

TARGET static inline VF SFX(tanh)(VF x)
{
    VF sign = V_AND(x, V_SET1(-0.0f));
    VF ax = V_ABS(x);
    VF e = SFX(exp_neg)(V_MUL(ax, V_SET1(-2.0f)));
    VF big = V_MUL(V_SUB(V_SET1(1.0f), e), V_RCP(V_ADD(V_SET1(1.0f), e)));
    VF u = V_MUL(x, x);
    VF p = V_SET1(-0.006627488415688276f);
    p = V_FMA(p, u, V_SET1(0.021320180967450142f));
    p = V_FMA(p, u, V_SET1(-0.053911592811346054f));
    p = V_FMA(p, u, V_SET1(0.1333312839269638f));
    p = V_FMA(p, u, V_SET1(-0.3333333134651184f));
    VF small = V_FMA(V_MUL(ax, u), p, ax);
    VF y = V_OR(V_SELECT_LT(ax, V_SET1(0.55f), small, big), sign);
    return V_SELECT_NAN(x, x, y);
}

TARGET static inline VF SFX(clip)(VF v, VF lo, VF hi)
{
    /* v first: a NaN gate input stays NaN through the activations' fix-up */
    VF c = V_MIN(V_MAX(v, lo), hi);
    return V_SELECT_NAN(v, v, c);
}

/* Units [k0, k1) of one row, k1 - k0 a multiple of VW. */
TARGET static void SFX(cell_range)(const lstm_cell_args *a, size_t k0, size_t k1)
{
    const float *acc = a->acc, *xw = a->xw, *bias = a->bias;
    size_t as = a->acc_stride, xs = a->xw_stride;
    bool clip = a->clip > 0, peep = a->peep_i != NULL;
    VF hi = V_SET1(a->clip), lo = V_SET1(-a->clip);
    for (size_t k = k0; k < k1; k += VW) {
        VF gi = V_ADD(V_LOAD(acc + k), V_LOAD(xw + k));
        VF go = V_ADD(V_LOAD(acc + as + k), V_LOAD(xw + xs + k));
        VF gf = V_ADD(V_LOAD(acc + 2 * as + k), V_LOAD(xw + 2 * xs + k));
        VF gc = V_ADD(V_LOAD(acc + 3 * as + k), V_LOAD(xw + 3 * xs + k));
        if (bias) {
            gi = V_ADD(gi, V_LOAD(bias + k));
            go = V_ADD(go, V_LOAD(bias + xs + k));
            gf = V_ADD(gf, V_LOAD(bias + 2 * xs + k));
            gc = V_ADD(gc, V_LOAD(bias + 3 * xs + k));
        }
        VF c = V_LOAD(a->c + k);
        if (peep) {
            gi = V_FMA(V_LOAD(a->peep_i + k), c, gi);
            gf = V_FMA(V_LOAD(a->peep_f + k), c, gf);
        }
        if (clip) {
            gi = SFX(clip)(gi, lo, hi);
            gf = SFX(clip)(gf, lo, hi);
            gc = SFX(clip)(gc, lo, hi);
        }
        VF i = SFX(sigmoid)(gi);
        VF f = a->input_forget ? V_SUB(V_SET1(1.0f), i) : SFX(sigmoid)(gf);
        c = V_FMA(f, c, V_MUL(i, SFX(tanh)(gc)));
        if (peep)
            go = V_FMA(V_LOAD(a->peep_o + k), c, go);
        if (clip)
            go = SFX(clip)(go, lo, hi);
        V_STORE(a->c + k, c);
        V_STORE(a->h + k, V_MUL(SFX(sigmoid)(go), SFX(tanh)(c)));
    }
}

#undef VF
#undef VW
#undef TARGET
#undef SFX
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_FMA
#undef V_MIN
#undef V_MAX
#undef V_AND
#undef V_OR
#undef V_ABS
#undef V_ROUND
#undef V_POW2I
#undef V_RCP
#undef V_SELECT_LT
#undef V_SELECT_NAN
