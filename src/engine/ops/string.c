/*
 * ops/string.c — text operators on string tensors: StringNormalizer (opset
 * 10, onnx 1.12 Operators.md).
 *
 * StringNormalizer drops the stopwords (compared exactly, or ignoring case
 * when is_case_sensitive is 0) from a [C] or [1, C] string tensor and changes
 * the case of what is left (LOWER, UPPER or NONE). When every string is
 * dropped the output holds one empty string ([1], or [1, 1]), as the spec
 * says. Strings are UTF-8; case changes cover the one-to-one case pairs of
 * ASCII, Latin-1, Latin Extended-A, basic Greek (U+0391-03A9, U+03B1-03C9)
 * and Cyrillic (U+0400-045F), independent of `locale` (which is accepted but,
 * unlike ONNX Runtime's, not looked up on the host); other characters (final
 * sigma, long s, dotless i, accented Greek, other scripts), and bytes that
 * are not valid UTF-8, pass through unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef enum case_change { CASE_NONE, CASE_LOWER, CASE_UPPER } case_change;

typedef struct normalizer_state {
    case_change action;
    bool case_sensitive;
    size_t n_stopwords;
    ifd_string *stopwords; /* lowercased when !case_sensitive */
} normalizer_state;

static void normalizer_free(void *p)
{
    normalizer_state *st = p;
    if (!st)
        return;
    strings_free(st->stopwords, st->n_stopwords);
    free(st->stopwords);
    free(st);
}

/* Latin Extended-A's pairs: an upper case letter at c, its lower case at
 * c + 1 (U+0100-0137 and U+014A-0177 from an even code point, U+0139-0148
 * and U+0179-017E from an odd one). U+0130/U+0131 (Turkish dotted and
 * dotless i) have no one-to-one pair and stay. */
static bool extended_a_upper(unsigned c)
{
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return !(c & 1) && c != 0x130;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
        return c & 1;
    return false;
}

/* Simple case mapping of one code point. */
static unsigned map_case(unsigned c, bool upper)
{
    if (upper) {
        if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7) ||
            (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) || (c >= 0x430 && c <= 0x44F))
            return c - 0x20;
        if (c == 0xFF)
            return 0x178;
        if (c >= 0x450 && c <= 0x45F)
            return c - 0x50;
        if (c != 0x131 && extended_a_upper(c - 1))
            return c - 1;
        return c;
    }
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
        return c + 0x20;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50;
    if (extended_a_upper(c))
        return c + 1;
    return c;
}

/* Decode one UTF-8 code point at s[i] (length *len); -1 when malformed. */
static long decode_utf8(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    unsigned char b = s[i];
    if (b < 0x80) {
        *len = 1;
        return b;
    }
    size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
    if (!need || i + need > n)
        return -1;
    long c = b & (0x7F >> need);
    for (size_t k = 1; k < need; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return -1;
        c = (c << 6) | (s[i + k] & 0x3F);
    }
    *len = need;
    return c;
}

static size_t encode_utf8(unsigned c, unsigned char *out)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    out[0] = (unsigned char)(0xE0 | (c >> 12));
    out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (unsigned char)(0x80 | (c & 0x3F));
    return 3;
}

/* s with its case changed into a new string (the mapped letters are all
 * below U+0800, so they keep their encoded length class). false on OOM. */
static bool change_case(const ifd_string *s, bool upper, ifd_string *out)
{
    const unsigned char *in = (const unsigned char *)s->data;
    unsigned char *buf = malloc(s->size + 1);
    if (!buf)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < s->size;) {
        size_t len;
        long c = decode_utf8(in, s->size, i, &len);
        if (c < 0 || c >= 0x800) {
            size_t k = c < 0 ? 1 : len;
            memcpy(buf + o, in + i, k);
            o += k;
            i += k;
            continue;
        }
        unsigned m = map_case((unsigned)c, upper);
        size_t w = encode_utf8(m < 0x800 ? m : (unsigned)c, buf + o);
        o += w;
        i += len;
    }
    bool ok = string_set(out, (const char *)buf, o);
    free(buf);
    return ok;
}

static int normalizer_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->inputs[0];
    if (x->kind != IFD_VALUE_TENSOR || x->dtype != IFD_STRING)
        return op_prepare_fail(node, err, "X must be a string tensor, not %s",
                               ifd_dtype_name(x->dtype));
    if (x->rank >= 0 && x->rank != 1 && !(x->rank == 2 && (x->dims[0] == 1 || x->dims[0] < 0)))
        return op_prepare_fail(node, err, "X must be [C] or [1, C]");
    normalizer_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *action = op_attr_string(node, "case_change_action", "NONE");
    if (strcmp(action, "NONE") == 0)
        st->action = CASE_NONE;
    else if (strcmp(action, "LOWER") == 0)
        st->action = CASE_LOWER;
    else if (strcmp(action, "UPPER") == 0)
        st->action = CASE_UPPER;
    else
        return op_prepare_fail(node, err, "case_change_action '%s' is not LOWER, UPPER or NONE",
                               action);
    st->case_sensitive = op_attr_int(node, "is_case_sensitive", 0) != 0;
    const ifd_string *words;
    size_t n = op_attr_strings(node, "stopwords", &words);
    st->stopwords = calloc(n + 1, sizeof(*st->stopwords));
    if (!st->stopwords)
        return op_prepare_fail(node, err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        bool ok = st->case_sensitive ? string_set(&st->stopwords[i], words[i].data, words[i].size)
                                     : change_case(&words[i], false, &st->stopwords[i]);
        st->n_stopwords = i + 1;
        if (!ok)
            return op_prepare_fail(node, err, "out of memory");
    }
    set_output(node, 0, IFD_STRING, x->rank, NULL);
    return 0;
}

static bool is_stopword(const normalizer_state *st, const ifd_string *s)
{
    for (size_t i = 0; i < st->n_stopwords; i++)
        if (st->stopwords[i].size == s->size &&
            (s->size == 0 || memcmp(st->stopwords[i].data, s->data, s->size) == 0))
            return true;
    return false;
}

static int normalizer_run(op_ctx *ctx)
{
    const normalizer_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (x->rank != 1 && !(x->rank == 2 && x->dims[0] == 1))
        return op_fail(ctx, "X must be [C] or [1, C]");
    int64_t n = ifd_tensor_count(x);
    const ifd_string *in = x->data;
    bool *keep = op_scratch(ctx, (size_t)n + 1);
    if (!keep)
        return -1;
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        ifd_string lowered = {0};
        const ifd_string *probe = &in[i];
        if (!st->case_sensitive) {
            if (!change_case(&in[i], false, &lowered))
                return op_fail(ctx, "out of memory");
            probe = &lowered;
        }
        keep[i] = !is_stopword(st, probe);
        strings_free(&lowered, st->case_sensitive ? 0 : 1);
        kept += keep[i];
    }
    int64_t dims[2] = {1, kept ? kept : 1};
    ifd_tensor *y = x->rank == 1 ? op_output(ctx, 0, IFD_STRING, 1, dims + 1)
                                 : op_output(ctx, 0, IFD_STRING, 2, dims);
    if (!y)
        return -1;
    ifd_string *out = y->data;
    int64_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        bool ok = st->action == CASE_NONE
                      ? string_set(&out[o], in[i].data ? in[i].data : "", in[i].size)
                      : change_case(&in[i], st->action == CASE_UPPER, &out[o]);
        if (!ok)
            return op_fail(ctx, "out of memory");
        o++;
    }
    if (!kept && !string_set(&out[0], "", 0))
        return op_fail(ctx, "out of memory");
    return 0;
}

static const op_def defs[] = {
    {"", "StringNormalizer", 10, 10, normalizer_prepare, normalizer_run, normalizer_free},
};

OP_FAMILY(ops_string, defs);
