#!/usr/bin/python3
"""Writes src/engine/onnx_op_versions.c: for every ONNX operator, the opset
versions at which its schema changed and, for each version, how many inputs
and outputs a node may have and which inputs it must name, taken from the
installed onnx package. The engine uses it to resolve which schema version a
model's opset means, and to refuse malformed nodes before any operator code
sees them.
Run: /usr/bin/python3 tools/gen_op_versions.py > src/engine/onnx_op_versions.c"""
import collections
import onnx
import onnx.defs

versions = collections.defaultdict(set)
arity = {}
for schema in onnx.defs.get_all_schemas_with_history():
    versions[(schema.domain, schema.name)].add(schema.since_version)
    # inputs a node must name: the formal parameters that are neither optional
    # nor variadic (a variadic one needs at least its first)
    required = 0
    for i, formal in enumerate(schema.inputs[:31]):
        if formal.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
            required |= 1 << i
    arity[(schema.domain, schema.name, schema.since_version)] = (
        schema.min_input, min(schema.max_input, 65535), schema.min_output,
        min(schema.max_output, 65535), required)

# Schema versions after onnx 1.12 (Debian's python3-onnx stops at opset 17).
# Written by hand from ONNX's published documentation: docs/Changelog.md and
# docs/Operators.md of onnx 1.13.0 (opset 18), 1.14.0 (opset 19), 1.15.0
# (opset 20) and 1.16.0 (opset 21), whose release notes list every operator
# whose schema changed. Each entry: (operator, since_version, min_inputs,
# max_inputs, min_outputs, max_outputs, inputs that must be named, what
# changed). Only ai.onnx; the table is applied only when the installed onnx
# does not already define that version.
POST_1_12 = [
    # opset 18, onnx 1.13.0
    ("BitwiseAnd", 18, 2, 2, 1, 1, 0b11, "new"),
    ("BitwiseNot", 18, 1, 1, 1, 1, 0b1, "new"),
    ("BitwiseOr", 18, 2, 2, 1, 1, 0b11, "new"),
    ("BitwiseXor", 18, 2, 2, 1, 1, 0b11, "new"),
    ("CenterCropPad", 18, 2, 2, 1, 1, 0b11, "new"),
    ("Col2Im", 18, 3, 3, 1, 1, 0b111, "new"),
    ("GroupNormalization", 18, 3, 3, 1, 1, 0b111, "new; scale and bias per group"),
    ("LpPool", 18, 1, 1, 1, 1, 0b1, "ceil_mode and dilations attributes"),
    ("Mish", 18, 1, 1, 1, 1, 0b1, "new"),
    ("OptionalGetElement", 18, 1, 1, 1, 1, 0b1, "accepts a plain tensor or sequence too"),
    ("OptionalHasElement", 18, 0, 1, 1, 1, 0b0, "input optional; a missing input is 'no element'"),
    ("Pad", 18, 2, 4, 1, 1, 0b11, "optional 'axes' input"),
    ("ReduceL1", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceL2", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceLogSum", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceLogSumExp", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceMax", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceMean", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceMin", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceProd", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("ReduceSumSquare", 18, 1, 2, 1, 1, 0b1, "axes is an optional input, noop_with_empty_axes"),
    ("Resize", 18, 1, 4, 1, 1, 0b1, "antialias, axes, keep_aspect_ratio_policy attributes"),
    ("ScatterElements", 18, 3, 3, 1, 1, 0b111, "reduction 'max' and 'min'"),
    ("ScatterND", 18, 3, 3, 1, 1, 0b111, "reduction 'max' and 'min'"),
    ("Split", 18, 1, 2, 1, 2147483647, 0b1, "num_outputs attribute"),
    # opset 19, onnx 1.14.0
    ("AveragePool", 19, 1, 1, 1, 1, 0b1, "dilations attribute"),
    ("Cast", 19, 1, 1, 1, 1, 0b1, "float8 types, saturate attribute"),
    ("CastLike", 19, 2, 2, 1, 1, 0b11, "float8 types, saturate attribute"),
    ("Constant", 19, 0, 0, 1, 1, 0b0, "float8 types"),
    ("DeformConv", 19, 3, 5, 1, 1, 0b111, "new"),
    ("DequantizeLinear", 19, 2, 3, 1, 1, 0b11, "float8 types"),
    ("Equal", 19, 2, 2, 1, 1, 0b11, "string inputs"),
    ("Identity", 19, 1, 1, 1, 1, 0b1, "float8 types"),
    ("If", 19, 1, 1, 1, 2147483647, 0b1, "float8 types"),
    ("Loop", 19, 2, 2147483647, 1, 2147483647, 0b100, "float8 types"),
    ("Pad", 19, 2, 4, 1, 1, 0b11, "'wrap' mode"),
    ("QuantizeLinear", 19, 2, 3, 1, 1, 0b11, "float8 types, saturate attribute"),
    ("Reshape", 19, 2, 2, 1, 1, 0b11, "float8 types"),
    ("Resize", 19, 1, 4, 1, 1, 0b1, "coordinate_transformation_mode 'half_pixel_symmetric'"),
    ("Scan", 19, 1, 2147483647, 1, 2147483647, 0b1, "float8 types"),
    ("Shape", 19, 1, 1, 1, 1, 0b1, "float8 types"),
    ("Size", 19, 1, 1, 1, 1, 0b1, "float8 types"),
    # opset 20, onnx 1.15.0
    ("AffineGrid", 20, 2, 2, 1, 1, 0b11, "new"),
    ("ConstantOfShape", 20, 1, 1, 1, 1, 0b1, "bfloat16, float8 and more value types"),
    ("DFT", 20, 1, 3, 1, 1, 0b1, "axis is an optional input"),
    ("Gelu", 20, 1, 1, 1, 1, 0b1, "new"),
    ("GridSample", 20, 2, 2, 1, 1, 0b11, "N-d, mode names 'linear' and 'cubic'"),
    ("ImageDecoder", 20, 1, 1, 1, 1, 0b1, "new"),
    ("IsInf", 20, 1, 1, 1, 1, 0b1, "float16, bfloat16 and float8 inputs"),
    ("IsNaN", 20, 1, 1, 1, 1, 0b1, "float8 inputs"),
    ("ReduceMax", 20, 1, 2, 1, 1, 0b1, "bool inputs"),
    ("ReduceMin", 20, 1, 2, 1, 1, 0b1, "bool inputs"),
    ("RegexFullMatch", 20, 1, 1, 1, 1, 0b1, "new"),
    ("StringConcat", 20, 2, 2, 1, 1, 0b11, "new"),
    ("StringSplit", 20, 1, 1, 2, 2, 0b1, "new"),
    # opset 21, onnx 1.16.0
    ("Cast", 21, 1, 1, 1, 1, 0b1, "int4 and uint4 types"),
    ("CastLike", 21, 2, 2, 1, 1, 0b11, "int4 and uint4 types"),
    ("Constant", 21, 0, 0, 1, 1, 0b0, "int4 and uint4 types"),
    ("ConstantOfShape", 21, 1, 1, 1, 1, 0b1, "int4 and uint4 types"),
    ("DequantizeLinear", 21, 2, 3, 1, 1, 0b11, "blocked quantization, int4/uint4/int16/uint16"),
    ("Flatten", 21, 1, 1, 1, 1, 0b1, "float8, int4 and uint4 types"),
    ("GroupNormalization", 21, 3, 3, 1, 1, 0b111, "stash_type; scale and bias per channel"),
    ("Identity", 21, 1, 1, 1, 1, 0b1, "int4 and uint4 types"),
    ("If", 21, 1, 1, 1, 2147483647, 0b1, "int4 and uint4 types"),
    ("Loop", 21, 2, 2147483647, 1, 2147483647, 0b100, "int4 and uint4 types"),
    ("Pad", 21, 2, 4, 1, 1, 0b11, "float8, int4 and uint4 types"),
    ("QLinearMatMul", 21, 8, 8, 1, 1, 0xff, "float8 types, float16/bfloat16 scales"),
    ("QuantizeLinear", 21, 2, 3, 1, 1, 0b11, "blocked quantization, int4/uint4/int16/uint16"),
    ("Reshape", 21, 2, 2, 1, 1, 0b11, "int4 and uint4 types"),
    ("Scan", 21, 1, 2147483647, 1, 2147483647, 0b1, "int4 and uint4 types"),
    ("Shape", 21, 1, 1, 1, 1, 0b1, "int4 and uint4 types"),
    ("Size", 21, 1, 1, 1, 1, 0b1, "int4 and uint4 types"),
    ("Squeeze", 21, 1, 2, 1, 1, 0b1, "float8, int4 and uint4 types"),
    ("Transpose", 21, 1, 1, 1, 1, 0b1, "float8, int4 and uint4 types"),
    ("Unsqueeze", 21, 2, 2, 1, 1, 0b11, "float8, int4 and uint4 types"),
]
POST_1_12_OPSET = 21
installed_opset = onnx.defs.onnx_opset_version()
for name, since, min_in, max_in, min_out, max_out, required, _ in POST_1_12:
    if since <= installed_opset:
        continue
    versions[("", name)].add(since)
    arity[("", name, since)] = (min_in, min(max_in, 65535), min_out, min(max_out, 65535),
                                required)

# ONNX Runtime's contrib operators that quantized and ORT-optimised exports
# carry, from its published docs/ContribOperators.md (all at version 1 of the
# com.microsoft operator set): (operator, min_inputs, max_inputs, min_outputs,
# max_outputs, inputs that must be named). Only the operators the engine
# implements exactly are listed; any other com.microsoft operator stays
# unknown and is refused at load by name.
CONTRIB_MS = [
    ("Gelu", 1, 1, 1, 1, 0x1),
    ("FastGelu", 1, 2, 1, 1, 0x1),
    ("BiasGelu", 2, 2, 1, 1, 0x3),
    ("QuickGelu", 1, 1, 1, 1, 0x1),
    ("SkipLayerNormalization", 3, 5, 1, 4, 0x7),
    ("QLinearAdd", 7, 8, 1, 1, 0x5b),        # A, A_scale, B, B_scale, C_scale named
    ("QLinearMul", 7, 8, 1, 1, 0x5b),
    ("QLinearSigmoid", 4, 5, 1, 1, 0xb),     # X, X_scale, Y_scale named
    ("QLinearLeakyRelu", 4, 5, 1, 1, 0xb),
    ("QLinearGlobalAveragePool", 5, 5, 1, 1, 0x1f),
    ("QLinearConcat", 5, 65535, 1, 1, 0x1f),
    ("DynamicQuantizeMatMul", 3, 5, 1, 1, 0x7),
    ("MatMulIntegerToFloat", 4, 7, 1, 1, 0xf),
]
for name, min_in, max_in, min_out, max_out, required in CONTRIB_MS:
    versions[("com.microsoft", name)].add(1)
    arity[("com.microsoft", name, 1)] = (min_in, max_in, min_out, max_out, required)

# ONNX Runtime also registers a LayerNormalization of its own in the ai.onnx
# domain at version 1 (contrib_defs.cc), which ORT-optimised models written
# before opset 17 carry; its semantics are LayerNormalization-17's.
if 1 not in versions[("", "LayerNormalization")]:
    versions[("", "LayerNormalization")].add(1)
    arity[("", "LayerNormalization", 1)] = (2, 3, 1, 3, 0x3)

# ai.onnx.ml 4 (onnx 1.15 Operators-ml.md): LabelEncoder-4 takes keys,
# values and default as tensor attributes; ai.onnx.ml 5 (onnx 1.16
# Operators-ml.md): TreeEnsemble, the one tree operator with a flat layout.
if 4 not in versions[("ai.onnx.ml", "LabelEncoder")]:
    versions[("ai.onnx.ml", "LabelEncoder")].add(4)
    arity[("ai.onnx.ml", "LabelEncoder", 4)] = (1, 1, 1, 1, 0x1)
if 5 not in versions[("ai.onnx.ml", "TreeEnsemble")]:
    versions[("ai.onnx.ml", "TreeEnsemble")].add(5)
    arity[("ai.onnx.ml", "TreeEnsemble", 5)] = (1, 1, 1, 1, 0x1)

max_opset = {"": max(installed_opset, POST_1_12_OPSET)}
for (domain, _), vs in versions.items():
    if domain:
        max_opset[domain] = max(max_opset.get(domain, 0), max(vs))

print("/* onnx_op_versions.c — generated by tools/gen_op_versions.py from onnx %s"
      " (opsets to %d) and, for opsets %d to %d, the hand-written table of ONNX 1.13-1.16's"
      " operator documentation in that script, plus ONNX Runtime's contrib operators"
      " (ContribOperators.md); do not edit. */"
      % (onnx.__version__, installed_opset, installed_opset + 1, POST_1_12_OPSET))
print("#include <stdint.h>\n#include <string.h>\n\n#include \"op.h\"\n")
print("typedef struct schema_history {\n    const char *domain;\n    const char *op_type;\n"
      "    int versions[24]; /* ascending, 0-terminated */\n} schema_history;\n")
print("static const schema_history histories[] = {")
for (domain, name) in sorted(versions):
    vs = sorted(versions[(domain, name)])
    print('    {"%s", "%s", {%s, 0}},' % (domain, name, ", ".join(map(str, vs))))
print("};\n")
print("typedef struct schema_arity {\n    const char *domain;\n    const char *op_type;\n    int version;\n"
      "    int min_inputs, max_inputs, min_outputs, max_outputs;\n"
      "    unsigned required_inputs; /* bit i: input i must be named */\n} schema_arity;\n")
print("static const schema_arity arities[] = {")
for (domain, name, version) in sorted(arity):
    a = arity[(domain, name, version)]
    print('    {"%s", "%s", %d, %d, %d, %d, %d, 0x%xu},' % ((domain, name, version) + a))
print("};\n")
print("""bool onnx_schema_arity(const char *domain, const char *op_type, int version, int *min_inputs,
                       int *max_inputs, int *min_outputs, int *max_outputs,
                       unsigned *required_inputs)
{
    if (strcmp(domain, "ai.onnx") == 0)
        domain = "";
    for (size_t i = 0; i < sizeof(arities) / sizeof(arities[0]); i++) {
        const schema_arity *a = &arities[i];
        if (a->version != version || strcmp(a->op_type, op_type) != 0 || strcmp(a->domain, domain) != 0)
            continue;
        *min_inputs = a->min_inputs;
        *max_inputs = a->max_inputs;
        *min_outputs = a->min_outputs;
        *max_outputs = a->max_outputs;
        *required_inputs = a->required_inputs;
        return true;
    }
    return false;
}
""")
print("""int64_t onnx_max_opset(const char *domain)
{
    if (strcmp(domain, "ai.onnx") == 0)
        domain = "";""")
for domain, v in sorted(max_opset.items()):
    print('    if (strcmp(domain, "%s") == 0)\n        return %d;' % (domain, v))
print("""    return 0;
}

int onnx_schema_version(const char *domain, const char *op_type, int64_t opset)
{
    if (strcmp(domain, "ai.onnx") == 0)
        domain = "";
    for (size_t i = 0; i < sizeof(histories) / sizeof(histories[0]); i++) {
        const schema_history *h = &histories[i];
        if (strcmp(h->op_type, op_type) != 0 || strcmp(h->domain, domain) != 0)
            continue;
        int found = 0;
        for (int k = 0; h->versions[k] != 0 && h->versions[k] <= opset; k++)
            found = h->versions[k];
        return found;
    }
    return 0;
}""")
