/*
 * ops/text_vectorize.c — TfIdfVectorizer (opset 9, onnx 1.12 Operators.md):
 * counts the n-grams of a pool in each row of token ids or strings and
 * weighs the counts (TF, IDF or TFIDF) into a dense float vector.
 *
 * The pool is given level by level: ngram_counts[k] is where the (k+1)-grams
 * start in pool_int64s / pool_strings, and ngram_indexes maps the i-th n-gram
 * of the pool to its output column. An n-gram is read from a row at start i
 * with skip s as tokens i, i+(s+1), ..., for s in [0, max_skip_count];
 * 1-grams are counted once per position (a skip means nothing to them), as
 * ONNX Runtime does. `weights` are read per output column, as ONNX Runtime
 * reads them (the spec's wording says per pool n-gram; the two agree when
 * ngram_indexes is the identity, as in every published case).
 *
 * At load each level is sorted so a row's n-grams are found by binary
 * search; strings are first mapped to the index of the pool's distinct
 * strings, so strings and integers share one counting path.
 */
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef enum tfidf_mode { TFIDF_TF, TFIDF_IDF, TFIDF_TFIDF } tfidf_mode;

typedef struct ngram_level {
    size_t count;      /* n-grams of this length */
    int64_t *tokens;   /* count * n token ids, sorted lexicographically */
    int64_t *columns;  /* output column of each sorted n-gram */
} ngram_level;

typedef struct tfidf_state {
    tfidf_mode mode;
    int64_t min_gram, max_gram, max_skip;
    int64_t columns;          /* output width: max(ngram_indexes) + 1 */
    int levels;               /* max_gram levels, level k holds (k+1)-grams */
    ngram_level *level;
    bool strings;
    size_t n_vocab;           /* distinct pool strings, sorted */
    ifd_string *vocab;
    const float *weights;     /* per output column; NULL: all 1 */
} tfidf_state;

static void tfidf_free(void *p)
{
    tfidf_state *st = p;
    if (!st)
        return;
    for (int k = 0; k < st->levels; k++)
        free(st->level[k].tokens), free(st->level[k].columns);
    free(st->level);
    strings_free(st->vocab, st->n_vocab);
    free(st->vocab);
    free(st);
}

static int string_compare(const ifd_string *a, const ifd_string *b)
{
    /* empty strings may have no bytes at all (data NULL), which memcmp must
     * not see even for a zero length (fuzz_model_load finding) */
    size_t n = a->size < b->size ? a->size : b->size;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c != 0)
        return c;
    return a->size < b->size ? -1 : a->size > b->size;
}

static int string_compare_qsort(const void *a, const void *b)
{
    return string_compare(a, b);
}

/* The id of a string in the sorted vocabulary, or -1 (never a pool id). */
static int64_t vocab_id(const tfidf_state *st, const ifd_string *s)
{
    size_t lo = 0, hi = st->n_vocab;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = string_compare(&st->vocab[mid], s);
        if (c == 0)
            return (int64_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int ngram_compare(const int64_t *a, const int64_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

static int ngram_compare_qsort(const void *a, const void *b, void *n)
{
    /* Entries are (n tokens, column) runs of n + 1 int64s. */
    return ngram_compare(a, b, *(const size_t *)n);
}

static int tfidf_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) != 0)
        return -1;
    const value_info *x = node->inputs[0];
    if (x->dtype != IFD_STRING && x->dtype != IFD_INT32 && x->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "input has dtype %s; string, int32 or int64 expected",
                               ifd_dtype_name(x->dtype));
    if (x->rank > 2 || x->rank == 0)
        return op_prepare_fail(node, err, "input has rank %d; [C] or [N, C] expected", x->rank);
    tfidf_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *mode = op_attr_string(node, "mode", "");
    if (strcmp(mode, "TF") == 0)
        st->mode = TFIDF_TF;
    else if (strcmp(mode, "IDF") == 0)
        st->mode = TFIDF_IDF;
    else if (strcmp(mode, "TFIDF") == 0)
        st->mode = TFIDF_TFIDF;
    else
        return op_prepare_fail(node, err, "mode '%s' is not TF, IDF or TFIDF", mode);
    st->min_gram = op_attr_int(node, "min_gram_length", 0);
    st->max_gram = op_attr_int(node, "max_gram_length", 0);
    st->max_skip = op_attr_int(node, "max_skip_count", 0);
    if (st->min_gram < 1 || st->max_gram < st->min_gram || st->max_gram > 64)
        return op_prepare_fail(node, err,
                               "min_gram_length %lld and max_gram_length %lld must satisfy "
                               "1 <= min <= max <= 64",
                               (long long)st->min_gram, (long long)st->max_gram);
    if (st->max_skip < 0 || st->max_skip > (1 << 20))
        return op_prepare_fail(node, err, "max_skip_count %lld is out of range",
                               (long long)st->max_skip);
    const int64_t *counts, *indexes, *pool_ints = NULL;
    const ifd_string *pool_strings = NULL;
    size_t n_counts = op_attr_ints(node, "ngram_counts", &counts);
    size_t n_indexes = op_attr_ints(node, "ngram_indexes", &indexes);
    size_t n_pool = op_attr_ints(node, "pool_int64s", &pool_ints);
    size_t n_pool_strings = op_attr_strings(node, "pool_strings", &pool_strings);
    st->strings = x->dtype == IFD_STRING;
    if (st->strings ? (n_pool_strings == 0 || n_pool) : (n_pool == 0 || n_pool_strings))
        return op_prepare_fail(node, err, "a %s input needs %s (and not the other pool)",
                               st->strings ? "string" : "integer",
                               st->strings ? "pool_strings" : "pool_int64s");
    if (st->strings)
        n_pool = n_pool_strings;
    if (n_counts == 0 || (int64_t)n_counts < st->max_gram)
        return op_prepare_fail(node, err, "ngram_counts has %zu levels; max_gram_length %lld needs "
                               "as many", n_counts, (long long)st->max_gram);
    /* Level k spans [counts[k], counts[k+1]) of the pool, k+1 tokens each. */
    size_t total = 0;
    for (size_t k = 0; k < n_counts; k++) {
        int64_t begin = counts[k], end = k + 1 < n_counts ? counts[k + 1] : (int64_t)n_pool;
        if (begin < 0 || end < begin || end > (int64_t)n_pool || (end - begin) % (int64_t)(k + 1))
            return op_prepare_fail(node, err, "ngram_counts[%zu] = %lld does not split the pool of "
                                   "%zu into whole %zu-grams", k, (long long)begin, n_pool, k + 1);
        total += (size_t)(end - begin) / (k + 1);
    }
    if (n_indexes != total)
        return op_prepare_fail(node, err, "ngram_indexes has %zu entries; the pool holds %zu n-grams",
                               n_indexes, total);
    st->columns = 0;
    for (size_t i = 0; i < n_indexes; i++) {
        if (indexes[i] < 0 || indexes[i] >= (int64_t)1 << 31)
            return op_prepare_fail(node, err, "ngram_indexes[%zu] = %lld is out of range", i,
                                   (long long)indexes[i]);
        if (indexes[i] + 1 > st->columns)
            st->columns = indexes[i] + 1;
    }
    const float *weights;
    size_t n_weights = op_attr_floats(node, "weights", &weights);
    if (n_weights) {
        if (n_weights != n_indexes || (int64_t)n_weights < st->columns)
            return op_prepare_fail(node, err, "weights has %zu entries; one per n-gram (%zu) "
                                   "covering all %lld output columns expected",
                                   n_weights, n_indexes, (long long)st->columns);
        st->weights = weights;
    }
    if (st->strings) {
        st->vocab = calloc(n_pool, sizeof(ifd_string));
        if (!st->vocab || !strings_copy(st->vocab, pool_strings, n_pool))
            return op_prepare_fail(node, err, "out of memory");
        st->n_vocab = n_pool;
        qsort(st->vocab, n_pool, sizeof(ifd_string), string_compare_qsort);
        size_t unique = 0;
        for (size_t i = 0; i < n_pool; i++) {
            if (unique && string_compare(&st->vocab[unique - 1], &st->vocab[i]) == 0) {
                free(st->vocab[i].data);
                st->vocab[i].data = NULL;
                continue;
            }
            st->vocab[unique++] = st->vocab[i];
        }
        st->n_vocab = unique;
    }
    st->levels = (int)st->max_gram;
    st->level = calloc((size_t)st->levels, sizeof(ngram_level));
    if (!st->level)
        return op_prepare_fail(node, err, "out of memory");
    size_t ngram = 0;
    for (size_t k = 0; k < n_counts; k++) {
        size_t n = k + 1;
        int64_t begin = counts[k], end = k + 1 < n_counts ? counts[k + 1] : (int64_t)n_pool;
        size_t count = (size_t)(end - begin) / n;
        if ((int64_t)n > st->max_gram) {
            ngram += count;
            continue;
        }
        int64_t *runs = malloc(count * (n + 1) * sizeof(int64_t) + 1);
        ngram_level *level = &st->level[k];
        level->tokens = malloc(count * n * sizeof(int64_t) + 1);
        level->columns = malloc(count * sizeof(int64_t) + 1);
        if (!runs || !level->tokens || !level->columns) {
            free(runs);
            return op_prepare_fail(node, err, "out of memory");
        }
        for (size_t g = 0; g < count; g++, ngram++) {
            for (size_t t = 0; t < n; t++) {
                size_t at = (size_t)begin + g * n + t;
                runs[g * (n + 1) + t] = st->strings ? vocab_id(st, &pool_strings[at]) : pool_ints[at];
            }
            runs[g * (n + 1) + n] = indexes[ngram];
        }
        qsort_r(runs, count, (n + 1) * sizeof(int64_t), ngram_compare_qsort, &n);
        for (size_t g = 0; g < count; g++) {
            memcpy(level->tokens + g * n, runs + g * (n + 1), n * sizeof(int64_t));
            level->columns[g] = runs[g * (n + 1) + n];
        }
        level->count = count;
        free(runs);
    }
    int64_t dims[2] = {x->rank == 2 ? x->dims[0] : st->columns, st->columns};
    set_output(node, 0, IFD_FLOAT, x->rank < 0 ? -1 : x->rank, dims);
    return 0;
}

/* The output column of an n-gram, or -1. */
static int64_t ngram_column(const ngram_level *level, size_t n, const int64_t *gram)
{
    size_t lo = 0, hi = level->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = ngram_compare(level->tokens + mid * n, gram, n);
        if (c == 0)
            return level->columns[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int tfidf_run(op_ctx *ctx)
{
    const tfidf_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (x->rank != 1 && x->rank != 2)
        return op_fail(ctx, "input has rank %d; [C] or [N, C] expected", x->rank);
    int64_t rows = x->rank == 2 ? x->dims[0] : 1, width = x->dims[x->rank - 1];
    int64_t dims[2] = {rows, st->columns};
    ifd_tensor *y = x->rank == 2 ? op_output(ctx, 0, IFD_FLOAT, 2, dims)
                                 : op_output(ctx, 0, IFD_FLOAT, 1, &st->columns);
    if (!y)
        return -1;
    float *out = y->data;
    memset(out, 0, (size_t)(rows * st->columns) * sizeof(float));
    int64_t *ids = op_scratch(ctx, (size_t)width * sizeof(int64_t) + 1);
    int64_t gram[64];
    if (!ids)
        return -1;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < width; j++) {
            size_t at = (size_t)(r * width + j);
            ids[j] = st->strings ? vocab_id(st, &((const ifd_string *)x->data)[at])
                                 : tensor_get_int64(x, at);
        }
        float *row = out + r * st->columns;
        for (int64_t i = 0; i < width; i++) {
            for (int64_t skip = 0; skip <= st->max_skip; skip++) {
                for (int64_t n = 1; n <= st->max_gram; n++) {
                    int64_t last = i + (n - 1) * (skip + 1);
                    if (last >= width)
                        break;
                    gram[n - 1] = ids[last];
                    if (n < st->min_gram || (n == 1 && skip > 0))
                        continue;
                    int64_t column = ngram_column(&st->level[n - 1], (size_t)n, gram);
                    if (column >= 0)
                        row[column] += 1.0f;
                }
                /* With one token per n-gram every skip reads the same 1-gram. */
                if (st->max_gram == 1)
                    break;
            }
        }
        for (int64_t c = 0; c < st->columns; c++) {
            float w = st->weights ? st->weights[c] : 1.0f;
            if (st->mode == TFIDF_IDF)
                row[c] = row[c] > 0 ? w : 0.0f;
            else if (st->mode == TFIDF_TFIDF)
                row[c] *= w;
        }
    }
    return 0;
}

static const op_def defs[] = {
    {"", "TfIdfVectorizer", 9, 9, tfidf_prepare, tfidf_run, tfidf_free},
};

OP_FAMILY(ops_text_vectorize, defs);
