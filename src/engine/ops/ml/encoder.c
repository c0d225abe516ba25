/*
 * ops/ml/encoder.c — the ai.onnx.ml categorical encoders: OneHotEncoder,
 * LabelEncoder (version 1: strings <-> indices; version 2: any of
 * string/int64/float to any of them through keys_* / values_*),
 * CategoryMapper (strings <-> int64) and DictVectorizer (a map to a dense
 * row). They carry scikit-learn's OneHotEncoder, LabelEncoder,
 * OrdinalEncoder and DictVectorizer.
 *
 * Every lookup table is sorted once in prepare and searched by bisection at
 * run time. When a key is listed twice the first occurrence wins, as in
 * ONNX Runtime's hash maps; a NaN float key matches NaN inputs.
 */
#include "ml.h"

/* ---- sorted key tables -------------------------------------------------- */

typedef struct key_entry {
    const ifd_string *s;
    double f;
    int64_t i;
    uint32_t index;     /* position in the attribute */
} key_entry;

typedef struct key_table {
    ifd_dtype type;     /* IFD_STRING, IFD_INT64 or IFD_FLOAT */
    size_t n;
    key_entry *entries;
} key_table;

static int compare_strings(const ifd_string *a, const ifd_string *b)
{
    size_t n = a->size < b->size ? a->size : b->size;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c)
        return c;
    return a->size < b->size ? -1 : a->size > b->size;
}

/* NaN sorts after every number and equals NaN. */
static int compare_reals(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b);
    return a < b ? -1 : a > b;
}

static int compare_key(ifd_dtype type, const key_entry *a, const key_entry *b)
{
    if (type == IFD_STRING)
        return compare_strings(a->s, b->s);
    if (type == IFD_FLOAT)
        return compare_reals(a->f, b->f);
    return a->i < b->i ? -1 : a->i > b->i;
}

#define DEFINE_ENTRY_SORT(NAME, TYPE)                                   \
    static int NAME(const void *pa, const void *pb)                     \
    {                                                                   \
        const key_entry *a = pa, *b = pb;                               \
        int c = compare_key(TYPE, a, b);                                \
        return c ? c : (a->index < b->index ? -1 : a->index > b->index); \
    }
DEFINE_ENTRY_SORT(sort_strings, IFD_STRING)
DEFINE_ENTRY_SORT(sort_floats, IFD_FLOAT)
DEFINE_ENTRY_SORT(sort_ints, IFD_INT64)

static bool table_build(key_table *t, ifd_dtype type, size_t n, const ifd_string *strs,
                        const float *floats, const int64_t *ints)
{
    t->type = type;
    t->n = n;
    t->entries = malloc((n ? n : 1) * sizeof(key_entry));
    if (!t->entries || n >= UINT32_MAX)
        return false;
    for (size_t k = 0; k < n; k++) {
        key_entry *e = &t->entries[k];
        memset(e, 0, sizeof(*e));
        e->index = (uint32_t)k;
        if (type == IFD_STRING)
            e->s = &strs[k];
        else if (type == IFD_FLOAT)
            e->f = floats[k];
        else
            e->i = ints[k];
    }
    qsort(t->entries, n, sizeof(key_entry),
          type == IFD_STRING ? sort_strings : type == IFD_FLOAT ? sort_floats : sort_ints);
    return true;
}

/* Attribute index of the first key equal to `probe`, or -1. */
static int64_t table_find(const key_table *t, const key_entry *probe)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_key(t->type, &t->entries[mid], probe) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->n && compare_key(t->type, &t->entries[lo], probe) == 0)
        return t->entries[lo].index;
    return -1;
}

/* Element i of a tensor as a probe for a table of the tensor's key type. */
static int64_t table_find_element(const key_table *t, const ifd_tensor *x, size_t i)
{
    key_entry probe = {0};
    if (t->type == IFD_STRING)
        probe.s = &((const ifd_string *)x->data)[i];
    else if (t->type == IFD_FLOAT)
        probe.f = tensor_get_double(x, i);
    else
        probe.i = tensor_get_int64(x, i);
    return table_find(t, &probe);
}

/* ---- value mappers: LabelEncoder and CategoryMapper --------------------- */

/*
 * One element-wise map from keys to values:
 *   - LabelEncoder-1 string -> int64: the index of the string in
 *     classes_strings (values == NULL), default_int64 otherwise;
 *   - LabelEncoder-1 int64 -> string: classes_strings[x] (direct_index);
 *   - otherwise keys[k] -> values[k], the default when the key is absent.
 */
typedef struct mapper {
    key_table keys;
    ifd_dtype in, out;
    bool direct_index;
    size_t n_values;
    const int64_t *value_ints;
    const float *value_floats;
    const ifd_string *value_strings;
    int64_t default_int;
    float default_float;
    ifd_string default_string;
} mapper;

static void mapper_free(void *p)
{
    mapper *m = p;
    if (m)
        free(m->keys.entries);
    free(m);
}

static void set_mapped_output(op_node *node, ifd_dtype dtype)
{
    const value_info *x = node->inputs[0];
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = dtype;
    y->rank = x->rank;
    for (int i = 0; i < x->rank && i < IFD_MAX_RANK; i++)
        y->dims[i] = x->dims[i];
}

static void read_default_string(const op_node *node, mapper *m)
{
    const op_attr *a = op_attr_find(node, "default_string");
    if (a && a->type == OP_ATTR_STRING) {
        m->default_string = a->s;
    } else {
        m->default_string.data = (char *)"_Unused";
        m->default_string.size = 7;
    }
}

/* The first input, or NULL when the node has none. */
static const value_info *first_input(const op_node *node)
{
    return node->n_inputs > 0 ? node->inputs[0] : NULL;
}

static int mapper_finish(op_node *node, ifd_error *err, mapper *m)
{
    const value_info *x = first_input(node);
    if (!x || x->kind != IFD_VALUE_TENSOR || (x->dtype != IFD_UNDEFINED && x->dtype != m->in)) {
        /* the message reads m->in, so free m only after writing it */
        int failed = op_prepare_fail(node, err, "input must be a %s tensor, not %s",
                                     ifd_dtype_name(m->in), x ? ifd_dtype_name(x->dtype) : "missing");
        mapper_free(m);
        return failed;
    }
    node->state = m;
    set_mapped_output(node, m->out);
    return 0;
}

/* LabelEncoder-1: classes_strings, default_int64, default_string. The input
 * type picks the direction. */
static int label_encoder_1_prepare(op_node *node, ifd_error *err)
{
    const ifd_string *classes;
    size_t n = op_attr_strings(node, "classes_strings", &classes);
    mapper *m = calloc(1, sizeof(*m));
    if (!m)
        return op_prepare_fail(node, err, "out of memory");
    m->default_int = op_attr_int(node, "default_int64", -1);
    read_default_string(node, m);
    ifd_dtype t = first_input(node) ? first_input(node)->dtype : IFD_UNDEFINED;
    if (t == IFD_STRING) {
        m->in = IFD_STRING;
        m->out = IFD_INT64;
        if (!table_build(&m->keys, IFD_STRING, n, classes, NULL, NULL)) {
            mapper_free(m);
            return op_prepare_fail(node, err, "out of memory");
        }
    } else if (t == IFD_INT64) {
        m->in = IFD_INT64;
        m->out = IFD_STRING;
        m->direct_index = true;
        m->value_strings = classes;
        m->n_values = n;
    } else {
        mapper_free(m);
        return op_prepare_fail(node, err, "input must be a string or int64 tensor, not %s",
                               ifd_dtype_name(t));
    }
    return mapper_finish(node, err, m);
}

/* LabelEncoder-4 (onnx 1.15 Operators-ml.md) may give its keys, values and
 * default as tensor attributes (keys_tensor, values_tensor, default_tensor)
 * instead of the typed lists; inferd maps the three list types (string,
 * int64, float) and refuses tensors of the others (double, int16, int32). */
static int tensor_list(op_node *node, const char *name, const ifd_string **strs,
                       const int64_t **ints, const float **floats, size_t *ns, size_t *ni,
                       size_t *nf, ifd_error *err)
{
    const ifd_tensor *t = op_attr_tensor(node, name);
    if (!t)
        return 0;
    if (*ns || *ni || *nf)
        return op_prepare_fail(node, err, "%s and a typed list are both set", name);
    size_t n = (size_t)ifd_tensor_count(t);
    switch (t->dtype) {
    case IFD_STRING: *strs = t->data, *ns = n; break;
    case IFD_INT64: *ints = t->data, *ni = n; break;
    case IFD_FLOAT: *floats = t->data, *nf = n; break;
    default:
        return op_prepare_fail(node, err, "%s of type %s is not supported (string, int64 or "
                               "float)", name, ifd_dtype_name(t->dtype));
    }
    if (n == 0)
        return op_prepare_fail(node, err, "%s is empty", name);
    return 0;
}

/* LabelEncoder-2: exactly one keys_* and one values_* list of equal length
 * (from 4, or keys_tensor and values_tensor). */
static int label_encoder_2_prepare(op_node *node, ifd_error *err)
{
    const ifd_string *ks = NULL, *vs = NULL;
    const int64_t *ki = NULL, *vi = NULL;
    const float *kf = NULL, *vf = NULL;
    size_t nks = op_attr_strings(node, "keys_strings", &ks);
    size_t nki = op_attr_ints(node, "keys_int64s", &ki);
    size_t nkf = op_attr_floats(node, "keys_floats", &kf);
    size_t nvs = op_attr_strings(node, "values_strings", &vs);
    size_t nvi = op_attr_ints(node, "values_int64s", &vi);
    size_t nvf = op_attr_floats(node, "values_floats", &vf);
    if (node->version >= 4 &&
        (tensor_list(node, "keys_tensor", &ks, &ki, &kf, &nks, &nki, &nkf, err) ||
         tensor_list(node, "values_tensor", &vs, &vi, &vf, &nvs, &nvi, &nvf, err)))
        return -1;
    if ((nks > 0) + (nki > 0) + (nkf > 0) != 1)
        return op_prepare_fail(node, err, "exactly one of keys_strings, keys_int64s, keys_floats "
                                          "must be set");
    if ((nvs > 0) + (nvi > 0) + (nvf > 0) != 1)
        return op_prepare_fail(node, err, "exactly one of values_strings, values_int64s, "
                                          "values_floats must be set");
    size_t nk = nks + nki + nkf, nv = nvs + nvi + nvf;
    if (nk != nv)
        return op_prepare_fail(node, err, "%zu keys but %zu values", nk, nv);
    mapper *m = calloc(1, sizeof(*m));
    if (!m)
        return op_prepare_fail(node, err, "out of memory");
    m->in = nks ? IFD_STRING : nki ? IFD_INT64 : IFD_FLOAT;
    m->out = nvs ? IFD_STRING : nvi ? IFD_INT64 : IFD_FLOAT;
    m->n_values = nv;
    m->value_strings = vs;
    m->value_ints = vi;
    m->value_floats = vf;
    m->default_int = op_attr_int(node, "default_int64", -1);
    m->default_float = op_attr_float(node, "default_float", -0.0f);
    read_default_string(node, m);
    const ifd_tensor *fallback = node->version >= 4 ? op_attr_tensor(node, "default_tensor") : NULL;
    if (fallback) {
        if (fallback->dtype != m->out || ifd_tensor_count(fallback) != 1) {
            mapper_free(m);
            return op_prepare_fail(node, err, "default_tensor must be one %s value",
                                   ifd_dtype_name(nvs ? IFD_STRING : nvi ? IFD_INT64 : IFD_FLOAT));
        }
        if (m->out == IFD_STRING)
            m->default_string = ((const ifd_string *)fallback->data)[0];
        else if (m->out == IFD_INT64)
            m->default_int = ((const int64_t *)fallback->data)[0];
        else
            m->default_float = ((const float *)fallback->data)[0];
    }
    if (!table_build(&m->keys, m->in, nk, ks, kf, ki)) {
        mapper_free(m);
        return op_prepare_fail(node, err, "out of memory");
    }
    return mapper_finish(node, err, m);
}

/* CategoryMapper: cats_strings[k] <-> cats_int64s[k]; the input picks the way. */
static int category_mapper_prepare(op_node *node, ifd_error *err)
{
    const ifd_string *strs;
    const int64_t *ints;
    size_t ns = op_attr_strings(node, "cats_strings", &strs);
    size_t ni = op_attr_ints(node, "cats_int64s", &ints);
    if (ns != ni)
        return op_prepare_fail(node, err, "cats_strings has %zu entries, cats_int64s %zu", ns, ni);
    mapper *m = calloc(1, sizeof(*m));
    if (!m)
        return op_prepare_fail(node, err, "out of memory");
    m->default_int = op_attr_int(node, "default_int64", -1);
    read_default_string(node, m);
    ifd_dtype t = first_input(node) ? first_input(node)->dtype : IFD_UNDEFINED;
    m->n_values = ns;
    if (t == IFD_STRING) {
        m->in = IFD_STRING;
        m->out = IFD_INT64;
        m->value_ints = ints;
    } else if (t == IFD_INT64) {
        m->in = IFD_INT64;
        m->out = IFD_STRING;
        m->value_strings = strs;
    } else {
        mapper_free(m);
        return op_prepare_fail(node, err, "input must be a string or int64 tensor, not %s",
                               ifd_dtype_name(t));
    }
    if (!table_build(&m->keys, m->in, ns, strs, NULL, ints)) {
        mapper_free(m);
        return op_prepare_fail(node, err, "out of memory");
    }
    return mapper_finish(node, err, m);
}

static int mapper_run(op_ctx *ctx)
{
    const mapper *m = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x || x->dtype != m->in)
        return op_fail(ctx, "input must be a %s tensor", ifd_dtype_name(m->in));
    ifd_tensor *y = op_output(ctx, 0, m->out, x->rank, x->dims);
    if (!y)
        return -1;
    size_t count = (size_t)ifd_tensor_count(x);
    for (size_t i = 0; i < count; i++) {
        int64_t k;
        if (m->direct_index) {
            int64_t v = ((const int64_t *)x->data)[i];
            k = v >= 0 && (uint64_t)v < m->n_values ? v : -1;
        } else {
            k = table_find_element(&m->keys, x, i);
        }
        switch (m->out) {
        case IFD_INT64:
            ((int64_t *)y->data)[i] = k < 0 ? m->default_int : m->value_ints ? m->value_ints[k] : k;
            break;
        case IFD_FLOAT:
            ((float *)y->data)[i] = k < 0 ? m->default_float : m->value_floats[k];
            break;
        default: {
            const ifd_string *s = k < 0 ? &m->default_string : &m->value_strings[k];
            if (!string_set(&((ifd_string *)y->data)[i], s->data ? s->data : "", s->size))
                return op_fail(ctx, "out of memory");
            break;
        }
        }
    }
    return 0;
}

/* ---- OneHotEncoder ------------------------------------------------------ */

typedef struct one_hot {
    key_table cats;
    bool zeros;          /* unknown categories give an all-zero row */
} one_hot;

static void one_hot_free(void *p)
{
    one_hot *s = p;
    if (s)
        free(s->cats.entries);
    free(s);
}

static int one_hot_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = first_input(node);
    if (!x || x->kind != IFD_VALUE_TENSOR)
        return op_prepare_fail(node, err, "input X must be a tensor");
    const ifd_string *strs;
    const int64_t *ints;
    size_t ns = op_attr_strings(node, "cats_strings", &strs);
    size_t ni = op_attr_ints(node, "cats_int64s", &ints);
    bool strings = x->dtype == IFD_STRING;
    if (x->dtype != IFD_UNDEFINED && !strings && !ml_numeric_input(x->dtype))
        return op_prepare_fail(node, err, "input X of type %s is not supported",
                               ifd_dtype_name(x->dtype));
    if (x->dtype == IFD_UNDEFINED)
        return op_prepare_fail(node, err, "the type of input X must be known");
    if (strings ? ns == 0 : ni == 0)
        return op_prepare_fail(node, err, "cats_%s is required for a %s input",
                               strings ? "strings" : "int64s", ifd_dtype_name(x->dtype));
    if (x->rank >= IFD_MAX_RANK)
        return op_prepare_fail(node, err, "input rank %d leaves no room for the category axis",
                               x->rank);
    one_hot *s = calloc(1, sizeof(*s));
    if (!s || !table_build(&s->cats, strings ? IFD_STRING : IFD_INT64, strings ? ns : ni, strs,
                           NULL, ints)) {
        one_hot_free(s);
        return op_prepare_fail(node, err, "out of memory");
    }
    s->zeros = op_attr_int(node, "zeros", 1) != 0;
    node->state = s;
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = IFD_FLOAT;
    y->rank = x->rank < 0 ? -1 : x->rank + 1;
    for (int i = 0; i < x->rank; i++)
        y->dims[i] = x->dims[i];
    if (x->rank >= 0)
        y->dims[x->rank] = (int64_t)s->cats.n;
    return 0;
}

static int one_hot_run(op_ctx *ctx)
{
    const one_hot *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    bool strings = s->cats.type == IFD_STRING;
    if (!x || (strings ? x->dtype != IFD_STRING : !ml_numeric_input(x->dtype)))
        return op_fail(ctx, "input X must be a %s tensor", strings ? "string" : "numeric");
    if (x->rank >= IFD_MAX_RANK)
        return op_fail(ctx, "input rank %d is too large", x->rank);
    int64_t dims[IFD_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = x->dims[i];
    dims[x->rank] = (int64_t)s->cats.n;
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, x->rank + 1, dims);
    if (!y)
        return -1;
    size_t count = (size_t)ifd_tensor_count(x), C = s->cats.n;
    float *out = y->data;
    memset(out, 0, count * C * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        /* Numeric inputs are truncated to int64 and looked up in cats_int64s. */
        int64_t k = table_find_element(&s->cats, x, i);
        if (k >= 0)
            out[i * C + (size_t)k] = 1.0f;
        else if (!s->zeros)
            return op_fail(ctx, "element %zu is not a known category and zeros is 0", i);
    }
    return 0;
}

/* ---- DictVectorizer ----------------------------------------------------- */

static int dict_vectorizer_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = first_input(node);
    const ifd_string *strs;
    const int64_t *ints;
    size_t ns = op_attr_strings(node, "string_vocabulary", &strs);
    size_t ni = op_attr_ints(node, "int64_vocabulary", &ints);
    if ((ns > 0) == (ni > 0))
        return op_prepare_fail(node, err, "exactly one of string_vocabulary and int64_vocabulary "
                                          "must be set");
    if (!x || x->kind != IFD_VALUE_MAP)
        return op_prepare_fail(node, err, "input X must be a map");
    ifd_dtype key = ns ? IFD_STRING : IFD_INT64;
    if (x->key_dtype != IFD_UNDEFINED && x->key_dtype != key)
        return op_prepare_fail(node, err, "map keys are %s but the vocabulary is %s",
                               ifd_dtype_name(x->key_dtype), ifd_dtype_name(key));
    if (x->dtype != IFD_INT64 && x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE &&
        x->dtype != IFD_STRING)
        return op_prepare_fail(node, err, "map values of type %s are not supported",
                               ifd_dtype_name(x->dtype));
    key_table *t = calloc(1, sizeof(*t));
    if (!t || !table_build(t, key, ns + ni, strs, NULL, ints)) {
        if (t)
            free(t->entries);
        free(t);
        return op_prepare_fail(node, err, "out of memory");
    }
    node->state = t;
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = 2;
    y->dims[0] = 1;
    y->dims[1] = (int64_t)(ns + ni);
    return 0;
}

static void table_free(void *p)
{
    key_table *t = p;
    if (t)
        free(t->entries);
    free(t);
}

static int dict_vectorizer_run(op_ctx *ctx)
{
    const key_table *t = ctx->node->state;
    const ifd_value *x = op_input_value(ctx, 0);
    if (!x || x->kind != IFD_VALUE_MAP || x->map_keys.dtype != t->type)
        return op_fail(ctx, "input X must be a map with %s keys", ifd_dtype_name(t->type));
    const ifd_tensor *keys = &x->map_keys, *values = &x->map_values;
    size_t n = (size_t)ifd_tensor_count(keys);
    if ((size_t)ifd_tensor_count(values) != n)
        return op_fail(ctx, "the map has %zu keys but %lld values", n,
                       (long long)ifd_tensor_count(values));
    ifd_dtype vt = values->dtype;
    if (vt != IFD_INT64 && vt != IFD_FLOAT && vt != IFD_DOUBLE && vt != IFD_STRING)
        return op_fail(ctx, "map values of type %s are not supported", ifd_dtype_name(vt));
    int64_t dims[2] = {1, (int64_t)t->n};
    ifd_tensor *y = op_output(ctx, 0, vt, 2, dims);
    if (!y)
        return -1;
    if (vt != IFD_STRING)
        memset(y->data, 0, t->n * ifd_dtype_size(vt));
    for (size_t i = 0; i < n; i++) {
        /* Keys outside the vocabulary are dropped, as in ONNX Runtime. */
        int64_t k = table_find_element(t, keys, i);
        if (k < 0)
            continue;
        size_t elem = ifd_dtype_size(vt);
        if (vt == IFD_STRING) {
            const ifd_string *s = &((const ifd_string *)values->data)[i];
            if (!string_set(&((ifd_string *)y->data)[k], s->data ? s->data : "", s->size))
                return op_fail(ctx, "out of memory");
        } else {
            memcpy((char *)y->data + (size_t)k * elem, (const char *)values->data + i * elem, elem);
        }
    }
    return 0;
}

static const op_def defs[] = {
    {"ai.onnx.ml", "OneHotEncoder", 1, 1, one_hot_prepare, one_hot_run, one_hot_free},
    /* LabelEncoder-1 maps strings to their index and back; 2 generalised it to
     * keys_* -> values_* with per-type defaults. */
    {"ai.onnx.ml", "LabelEncoder", 1, 1, label_encoder_1_prepare, mapper_run, mapper_free},
    {"ai.onnx.ml", "LabelEncoder", 2, 4, label_encoder_2_prepare, mapper_run, mapper_free},
    {"ai.onnx.ml", "CategoryMapper", 1, 1, category_mapper_prepare, mapper_run, mapper_free},
    {"ai.onnx.ml", "DictVectorizer", 1, 1, dict_vectorizer_prepare, dict_vectorizer_run,
     table_free},
};
OP_FAMILY(ops_ml_encoder, defs);
