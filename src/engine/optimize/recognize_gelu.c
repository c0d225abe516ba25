/*
 * recognize_gelu.c — finds Gelu spelled out in primitives and runs it as the
 * engine's one Gelu operator (ONNX Gelu-20): one pass over x instead of five
 * to eight elementwise nodes, each writing a tensor of x's size.
 *
 * Exporters before opset 20 write the two forms of Gelu-20's definition:
 *   erf:  0.5 * x * (1 + erf(x / sqrt(2)))           (torch.onnx, nn.GELU())
 *   tanh: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), the cube
 *         as Pow(x, 3) or x * (x * x)
 *         (nn.GELU(approximate="tanh"), Hugging Face's gelu_new by hand)
 * and order the products as they please ((0.5*x)*e, (x*e)*0.5, x*(e*0.5)), so
 * a product is matched as the set of its factors, not as a tree shape.
 * Every intermediate must be read only inside the pattern; x itself may be
 * read anywhere.
 */
#include <math.h>
#include <string.h>

#include "optimize.h"

#define MAX_FACTORS 4
#define MAX_PATTERN_NODES 16
#define CONSTANT_TOLERANCE 1e-4

typedef struct pattern {
    int nodes[MAX_PATTERN_NODES];
    int n;
} pattern;

static bool pattern_add(pattern *p, int node)
{
    if (node < 0 || p->n == MAX_PATTERN_NODES)
        return false;
    p->nodes[p->n++] = node;
    return true;
}

/* The factors of the product `slot`: through Mul nodes read only here (the
 * top one, node `top`, may be read anywhere). */
static void collect_factors(const graph_view *g, int slot, int top, int *factors, int *n,
                            pattern *p)
{
    int mul = top >= 0 ? top : graph_view_sole_producer(g, slot, "Mul", 1);
    if (mul >= 0 && g->m->nodes[mul].op.n_inputs == 2 && *n + 2 <= MAX_FACTORS + 1 &&
        (top >= 0 || pattern_add(p, mul))) {
        for (int k = 0; k < 2; k++)
            collect_factors(g, g->m->nodes[mul].input_slots[k], -1, factors, n, p);
        return;
    }
    if (*n < MAX_FACTORS + 1)
        factors[(*n)++] = slot;
}

/* A two-input node one of whose inputs is the scalar `want`: its other input. */
static int input_beside_scalar(const graph_view *g, int node, double want)
{
    const int *in = g->m->nodes[node].input_slots;
    if (g->m->nodes[node].op.n_inputs != 2)
        return -1;
    if (graph_value_is_scalar(g->m, in[1], want, CONSTANT_TOLERANCE))
        return in[0];
    if (graph_value_is_scalar(g->m, in[0], want, CONSTANT_TOLERANCE))
        return in[1];
    return -1;
}

/* 1 + erf(x / sqrt 2) (or x * (1/sqrt 2)): x, or -1. */
static int match_erf_term(const graph_view *g, int slot, pattern *p)
{
    int add = graph_view_sole_producer(g, slot, "Add", 1);
    int t = add >= 0 ? input_beside_scalar(g, add, 1.0) : -1;
    int erf = graph_view_sole_producer(g, t, "Erf", 1);
    if (erf < 0)
        return -1;
    int u = g->m->nodes[erf].input_slots[0];
    int div = graph_view_sole_producer(g, u, "Div", 1);
    int x = -1, scale = div;
    if (div >= 0 && graph_value_is_scalar(g->m, g->m->nodes[div].input_slots[1], sqrt(2.0),
                                          CONSTANT_TOLERANCE))
        x = g->m->nodes[div].input_slots[0];
    if (x < 0) {
        scale = graph_view_sole_producer(g, u, "Mul", 1);
        x = scale >= 0 ? input_beside_scalar(g, scale, 1.0 / sqrt(2.0)) : -1;
    }
    if (x < 0 || !pattern_add(p, add) || !pattern_add(p, erf) || !pattern_add(p, scale))
        return -1;
    return x;
}

/* Factors {0.044715, x^3}, the cube as Pow(x, 3) or as x * x * x. */
static bool cube_times_constant(const graph_view *g, const int *f, int n, int x, pattern *p)
{
    int k = -1;
    for (int i = 0; i < n; i++)
        if (graph_value_is_scalar(g->m, f[i], 0.044715, CONSTANT_TOLERANCE))
            k = i;
    if (k < 0)
        return false;
    if (n == 4) {
        for (int i = 0; i < n; i++)
            if (i != k && f[i] != x)
                return false;
        return true;
    }
    if (n != 2)
        return false;
    int pow_node = graph_view_sole_producer(g, f[1 - k], "Pow", 1);
    return pow_node >= 0 && g->m->nodes[pow_node].input_slots[0] == x &&
           graph_value_is_scalar(g->m, g->m->nodes[pow_node].input_slots[1], 3.0,
                                 CONSTANT_TOLERANCE) &&
           pattern_add(p, pow_node);
}

/* 1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)): x, or -1. */
static int match_tanh_term(const graph_view *g, int slot, pattern *p)
{
    int add = graph_view_sole_producer(g, slot, "Add", 1);
    int t = add >= 0 ? input_beside_scalar(g, add, 1.0) : -1;
    int tanh_node = graph_view_sole_producer(g, t, "Tanh", 1);
    if (tanh_node < 0 || !pattern_add(p, add) || !pattern_add(p, tanh_node))
        return -1;
    int f[MAX_FACTORS + 1], n = 0;
    collect_factors(g, g->m->nodes[tanh_node].input_slots[0], -1, f, &n, p);
    if (n != 2)
        return -1;
    int inner = graph_value_is_scalar(g->m, f[0], sqrt(2.0 / M_PI), CONSTANT_TOLERANCE) ? f[1]
                : graph_value_is_scalar(g->m, f[1], sqrt(2.0 / M_PI), CONSTANT_TOLERANCE) ? f[0]
                                                                                          : -1;
    int sum = graph_view_sole_producer(g, inner, "Add", 1);
    if (sum < 0 || !pattern_add(p, sum))
        return -1;
    /* x + 0.044715 * Pow(x, 3), either order of the sum */
    for (int side = 0; side < 2; side++) {
        int x = g->m->nodes[sum].input_slots[side];
        int cubic = g->m->nodes[sum].input_slots[1 - side];
        int saved = p->n;
        int c[MAX_FACTORS + 1], nc = 0;
        collect_factors(g, cubic, -1, c, &nc, p);
        if (cube_times_constant(g, c, nc, x, p))
            return x;
        p->n = saved;
    }
    return -1;
}

/* Node `top` (a Mul) as the end of a Gelu: rewritten, and its other nodes
 * removed; false when it is not one. */
static bool try_gelu(graph_view *g, int top)
{
    pattern p = {.n = 0};
    int f[MAX_FACTORS + 1], n = 0;
    collect_factors(g, g->m->nodes[top].output_slots[0], top, f, &n, &p);
    if (n != 3)
        return false;
    int half = -1;
    for (int i = 0; i < 3; i++)
        if (graph_value_is_scalar(g->m, f[i], 0.5, CONSTANT_TOLERANCE))
            half = i;
    if (half < 0)
        return false;
    int a = f[(half + 1) % 3], b = f[(half + 2) % 3];
    int before = p.n;
    for (int form = 0; form < 2; form++) {
        for (int order = 0; order < 2; order++) {
            int x = order ? b : a, term = order ? a : b;
            p.n = before;
            int found = form == 0 ? match_erf_term(g, term, &p) : match_tanh_term(g, term, &p);
            if (found < 0 || found != x)
                continue;
            static const char tanh_text[] = "tanh";
            op_attr approximate = {.name = "approximate", .type = OP_ATTR_STRING,
                                   .s = {.data = (char *)tanh_text, .size = 4}};
            if (!graph_view_rewrite(g, top, "Gelu", 20, &x, 1, &approximate, form == 1 ? 1 : 0))
                return false;
            for (int i = 0; i < p.n; i++)
                graph_view_remove(g, p.nodes[i]);
            return true;
        }
    }
    return false;
}

ifd_status optimize_recognize_gelu(ifd_model *m, ifd_error *err)
{
    /* a pattern's last Mul is met before its inner ones */
    return graph_rewrite_from_end(m, "Mul", try_gelu, err);
}
