#!/usr/bin/python3
"""Writes the ai.onnx.ml operator cases under tests/engine/ops/cases/ml/.

ONNX's backend suite has no ai.onnx.ml cases, so these are the tests of the
ML operator family: small scikit-learn models (SVC, SVR, OneClassSVM,
LogisticRegression, LinearRegression, Ridge, random forests, gradient
boosting, decision trees, scalers, encoders) converted by hand to
ai.onnx.ml nodes the way skl2onnx exports them (skl2onnx is not installed
here), each stored in the backend-suite layout:

    NAME/model.onnx
    NAME/test_data_set_0/input_<k>.pb    TensorProto (MapProto for a map input)
    NAME/test_data_set_0/output_<k>.pb   TensorProto, or SequenceProto of
                                         MapProto for ZipMap's output
    NAME/fixture.json                    where the numbers come from, tolerance

Expected outputs are scikit-learn's own (predict / predict_proba /
transform / decision_function). Where ONNX leaves a behaviour to the runtime
(the two-column scores of a binary SVM without probabilities, one-row
LinearClassifier, tree node modes other than BRANCH_LEQ, MIN/MAX
aggregation, NaN routing) they come from a small numpy reference written
here from ONNX Runtime's documented rules. Cases holding an `expect_error`
file must be refused with that text (bad ids, cycles, out-of-range indices).

Deterministic: fixed random_state everywhere, no timestamps; rerunning
rewrites identical bytes. Run with Debian's /usr/bin/python3 (numpy, onnx
1.12, scikit-learn 1.2):  /usr/bin/python3 tools/gen_op_cases_ml.py
"""
import json
import os
import shutil

import numpy as np
import onnx
from onnx import MapProto, SequenceProto, TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, OneClassSVM, LinearSVC
from sklearn.tree import DecisionTreeRegressor

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "engine", "ops",
                    "cases", "ml")
ML = "ai.onnx.ml"
# Probabilities and scores must match scikit-learn (computed in double) to
# 1e-5; the engine computes in float like ONNX Runtime.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def f32(values):
    """Attribute floats exactly as they are stored (float32)."""
    return [float(v) for v in np.asarray(values, dtype=np.float32).ravel()]


def float32_threshold(t):
    """Largest float32 w with x <= w <=> x <= t for every float32 x: sklearn
    compares float32 features with double thresholds."""
    w = np.float32(t)
    if np.float64(w) > t:
        w = np.nextafter(w, np.float32(-np.inf))
    return float(w)


# ---- values ---------------------------------------------------------------

def map_proto(keys, values, name=None):
    m = MapProto()
    if name:
        m.name = name
    if isinstance(keys[0], str):
        m.key_type = TensorProto.STRING
        m.string_keys.extend(k.encode() for k in keys)
    else:
        m.key_type = TensorProto.INT64
        m.keys.extend(int(k) for k in keys)
    m.values.elem_type = SequenceProto.TENSOR
    for v in values:
        m.values.tensor_values.append(numpy_helper.from_array(np.array(v)))
    return m


def zipmap_value(probabilities, labels, name):
    """ZipMap's output: one map label -> probability per row."""
    seq = SequenceProto()
    seq.name = name
    seq.elem_type = SequenceProto.MAP
    for row in np.asarray(probabilities, dtype=np.float32):
        seq.map_values.append(map_proto(list(labels), [np.float32(p) for p in row]))
    return seq


def value_proto(value, name):
    if isinstance(value, (SequenceProto, MapProto)):
        value.name = name
        return value
    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def tensor_info(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def map_type(key_type, value_type=TensorProto.FLOAT):
    """map(key, tensor(value)); onnx 1.12's helper has no make_map_type_proto."""
    t = onnx.TypeProto()
    t.map_type.key_type = key_type
    t.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(value_type, None))
    return t


def zipmap_info(name, key_type=TensorProto.INT64):
    return helper.make_value_info(name, helper.make_sequence_type_proto(map_type(key_type)))


def make_model(name, nodes, inputs, outputs, ml_opset=1):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(graph, producer_name="inferd-gen_op_cases_ml",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid(ML, ml_opset)])
    model.ir_version = 8
    return model


def write_case(name, model, inputs, outputs, source, check=True, expect_error=None):
    if check:
        onnx.checker.check_model(model)
    case = os.path.join(ROOT, name)
    os.makedirs(case)
    with open(os.path.join(case, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    if expect_error is not None:
        with open(os.path.join(case, "expect_error"), "w") as f:
            f.write(expect_error + "\n")
    if inputs is not None:
        folder = os.path.join(case, "test_data_set_0")
        os.makedirs(folder)
        for k, (value, info) in enumerate(zip(inputs, model.graph.input)):
            with open(os.path.join(folder, "input_%d.pb" % k), "wb") as f:
                f.write(value_proto(value, info.name).SerializeToString())
        for k, (value, info) in enumerate(zip(outputs or [], model.graph.output)):
            with open(os.path.join(folder, "output_%d.pb" % k), "wb") as f:
                f.write(value_proto(value, info.name).SerializeToString())
    meta = {"source": source}
    if expect_error is None:
        meta["tolerance"] = TOLERANCE
    with open(os.path.join(case, "fixture.json"), "w") as f:
        f.write(json.dumps(meta, indent=2) + "\n")


def classifier_case(name, nodes, X, labels, probabilities, class_labels, source, zipmap=False,
                    ml_opset=1, string_labels=False):
    """A classifier graph: X -> nodes -> label, probabilities (or ZipMap)."""
    label_type = TensorProto.STRING if string_labels else TensorProto.INT64
    outputs = [tensor_info("label", label_type, [None])]
    if zipmap:
        nodes = nodes + [helper.make_node(
            "ZipMap", ["probabilities"], ["output_probability"], name="ZipMap", domain=ML,
            **({"classlabels_strings": list(class_labels)} if string_labels
               else {"classlabels_int64s": [int(c) for c in class_labels]}))]
        outputs.append(zipmap_info("output_probability",
                                   TensorProto.STRING if string_labels else TensorProto.INT64))
        second = zipmap_value(probabilities, class_labels, "output_probability")
    else:
        outputs.append(tensor_info("probabilities", TensorProto.FLOAT,
                                   [None, np.asarray(probabilities).shape[1]]))
        second = np.asarray(probabilities, dtype=np.float32)
    model = make_model(name, nodes, [tensor_info("X", TensorProto.FLOAT, [None, X.shape[1]])],
                       outputs, ml_opset)
    label_values = (np.array([str(v) for v in labels], dtype=object) if string_labels
                    else np.asarray(labels, dtype=np.int64))
    write_case(name, model, [X.astype(np.float32)], [label_values, second], source)


def regressor_case(name, nodes, X, Y, source, ml_opset=1, input_type=TensorProto.FLOAT):
    Y = np.asarray(Y, dtype=np.float32)
    model = make_model(name, nodes, [tensor_info("X", input_type, [None, X.shape[1]])],
                       [tensor_info("Y", TensorProto.FLOAT, [None, Y.shape[1]])], ml_opset)
    write_case(name, model, [X], [Y], source)


# ---- data -----------------------------------------------------------------

def iris():
    data = load_iris()
    X = data.data.astype(np.float32)
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))
    return X[order[:90]], data.target[order[:90]], X[order[90:102]]


def two_class():
    X, y = make_classification(n_samples=80, n_features=4, n_informative=3, n_redundant=0,
                               random_state=1)
    X = X.astype(np.float32)
    return X[:68], y[:68], X[68:]


def regression(targets=1):
    X, Y = make_regression(n_samples=70, n_features=4, n_targets=targets, noise=0.5,
                           random_state=2)
    X = X.astype(np.float32)
    Y = Y.reshape(len(Y), -1)
    return X[:60], Y[:60], X[60:]


# ---- SVM ------------------------------------------------------------------

def svc_node(model, labels=None, post_transform="NONE"):
    """SVMClassifier as skl2onnx writes it: libsvm's own coefficients and
    rho (sklearn flips both signs for two classes; undo that)."""
    classes = [int(c) for c in model.classes_] if labels is None else labels
    coef = np.asarray(model.dual_coef_, dtype=np.float64)
    rho = np.asarray(model.intercept_, dtype=np.float64)
    if len(model.classes_) == 2:
        coef, rho = -coef, -rho
    attrs = dict(coefficients=f32(coef), rho=f32(rho), support_vectors=f32(model.support_vectors_),
                 vectors_per_class=[int(n) for n in model.n_support_],
                 kernel_type=model.kernel.upper(),
                 kernel_params=f32([model._gamma, model.coef0, model.degree]),
                 post_transform=post_transform)
    attrs["classlabels_strings" if isinstance(classes[0], str) else "classlabels_ints"] = classes
    if model.probability:
        attrs["prob_a"] = f32(model.probA_)
        attrs["prob_b"] = f32(model.probB_)
    return helper.make_node("SVMClassifier", ["X"], ["label", "probabilities"], name="SVM",
                            domain=ML, **attrs)


def svm_cases():
    X, y, T = iris()
    for kernel, extra in (("rbf", {}), ("poly", {"degree": 3, "coef0": 1.0}),
                          ("sigmoid", {"gamma": 0.05, "coef0": 0.1}), ("linear", {})):
        m = SVC(kernel=kernel, probability=True, random_state=0, **extra).fit(X, y)
        classifier_case("svm_classifier_%s_3class" % kernel, [svc_node(m)], T, m.predict(T),
                        m.predict_proba(T), m.classes_,
                        "sklearn SVC(kernel=%r, probability=True) on iris" % kernel,
                        zipmap=kernel == "rbf")
    X2, y2, T2 = two_class()
    m = SVC(kernel="rbf", probability=True, random_state=0).fit(X2, y2)
    classifier_case("svm_classifier_rbf_binary", [svc_node(m)], T2, m.predict(T2),
                    m.predict_proba(T2), m.classes_, "sklearn SVC(probability=True), two classes",
                    zipmap=True)
    m = SVC(kernel="linear", probability=True, random_state=0).fit(X2, y2)
    names = ["no", "yes"]
    classifier_case("svm_classifier_linear_binary_strings", [svc_node(m, names)], T2,
                    [names[c] for c in m.predict(T2)], m.predict_proba(T2), names,
                    "sklearn SVC(kernel='linear', probability=True), string labels",
                    zipmap=True, string_labels=True)
    # Without probabilities: three classes give the pairwise decision values
    # (sklearn's decision_function_shape='ovo'); two classes give ONNX
    # Runtime's [-f, f] with f libsvm's value, i.e. [d, -d] for sklearn's d.
    m = SVC(kernel="rbf", decision_function_shape="ovo").fit(X, y)
    classifier_case("svm_classifier_rbf_3class_decision", [svc_node(m)], T, m.predict(T),
                    m.decision_function(T), m.classes_, "sklearn SVC() ovo decision values")
    m = SVC(kernel="rbf").fit(X2, y2)
    d = m.decision_function(T2)
    classifier_case("svm_classifier_rbf_binary_decision", [svc_node(m)], T2, m.predict(T2),
                    np.stack([d, -d], axis=1), m.classes_,
                    "sklearn SVC() binary; scores [-f, f] with f = -decision_function")
    # liblinear mode (no support vectors): score_c = x . coef_c + rho[0].
    lin = LinearSVC(random_state=0, max_iter=5000).fit(X, y)
    node = helper.make_node("SVMClassifier", ["X"], ["label", "probabilities"], name="SVM",
                            domain=ML, classlabels_ints=[0, 1, 2], coefficients=f32(lin.coef_),
                            rho=f32([0.25]), kernel_type="LINEAR")
    scores = T @ np.asarray(f32(lin.coef_), np.float64).reshape(3, -1).T + np.float32(0.25)
    classifier_case("svm_classifier_liblinear_mode", [node], T, scores.argmax(axis=1), scores,
                    [0, 1, 2], "SVMClassifier without support vectors: one linear score per class")

    Xr, Yr, Tr = regression()
    Xr_scaled, Tr_scaled = Xr / 2, Tr / 2
    m = SVR(kernel="rbf", C=10.0, epsilon=0.2).fit(Xr_scaled, Yr.ravel())
    node = helper.make_node("SVMRegressor", ["X"], ["Y"], name="SVR", domain=ML,
                            coefficients=f32(m.dual_coef_), rho=f32(m.intercept_),
                            support_vectors=f32(m.support_vectors_), n_supports=len(m.support_),
                            kernel_type="RBF", kernel_params=f32([m._gamma, 0.0, 3.0]))
    regressor_case("svm_regressor_rbf", [node], Tr_scaled, m.predict(Tr_scaled).reshape(-1, 1),
                   "sklearn SVR(kernel='rbf')")
    m = OneClassSVM(kernel="rbf", gamma=0.3, nu=0.2).fit(X)
    node = helper.make_node("SVMRegressor", ["X"], ["Y"], name="OneClassSVM", domain=ML,
                            coefficients=f32(m.dual_coef_), rho=f32(m.intercept_),
                            support_vectors=f32(m.support_vectors_), n_supports=len(m.support_),
                            kernel_type="RBF", kernel_params=f32([m._gamma, 0.0, 3.0]),
                            one_class=1)
    probe = np.concatenate([T[:8], T[:4] + np.float32(3.0)])
    regressor_case("svm_regressor_one_class", [node], probe,
                   m.predict(probe).astype(np.float32).reshape(-1, 1),
                   "sklearn OneClassSVM predict (+1 inlier, -1 outlier)")


# ---- linear ---------------------------------------------------------------

def linear_cases():
    X, y, T = iris()
    scaler = StandardScaler().fit(X)
    m = LogisticRegression(max_iter=1000).fit(scaler.transform(X), y)
    nodes = [
        helper.make_node("Scaler", ["X"], ["scaled"], name="Scaler", domain=ML,
                         offset=f32(scaler.mean_), scale=f32(1.0 / scaler.scale_)),
        helper.make_node("LinearClassifier", ["scaled"], ["label", "raw"], name="LogReg",
                         domain=ML, classlabels_ints=[0, 1, 2], coefficients=f32(m.coef_),
                         intercepts=f32(m.intercept_), multi_class=1, post_transform="SOFTMAX"),
        helper.make_node("Normalizer", ["raw"], ["probabilities"], name="Normalizer", domain=ML,
                         norm="L1"),
    ]
    Ts = scaler.transform(T)
    classifier_case("linear_classifier_multinomial", nodes, T, m.predict(Ts), m.predict_proba(Ts),
                    m.classes_, "StandardScaler + multinomial LogisticRegression", zipmap=True)

    X2, y2, T2 = two_class()
    m = LogisticRegression().fit(X2, y2)
    coef = np.concatenate([-m.coef_, m.coef_])
    node = helper.make_node("LinearClassifier", ["X"], ["label", "probabilities"], name="LogReg",
                            domain=ML, classlabels_ints=[0, 1], coefficients=f32(coef),
                            intercepts=f32(np.concatenate([-m.intercept_, m.intercept_])),
                            post_transform="LOGISTIC")
    classifier_case("linear_classifier_binary_logistic", [node], T2, m.predict(T2),
                    m.predict_proba(T2), [0, 1], "binary LogisticRegression, rows [-w, w]")

    # One coefficient row and two labels: ONNX Runtime's binary case, label
    # by the sign of the margin, scores [1 - s, s] (no transform).
    lin = LinearSVC(random_state=0, max_iter=5000).fit(X2, y2)
    node = helper.make_node("LinearClassifier", ["X"], ["label", "probabilities"], name="LinearSVC",
                            domain=ML, classlabels_strings=["neg", "pos"],
                            coefficients=f32(lin.coef_), intercepts=f32(lin.intercept_))
    s = (T2 @ np.asarray(f32(lin.coef_), np.float64).reshape(-1)
         + np.float32(lin.intercept_[0]))
    classifier_case("linear_classifier_one_row_binary", [node], T2,
                    np.where(s > 0, "pos", "neg"), np.stack([1 - s, s], axis=1), ["neg", "pos"],
                    "LinearSVC decision as a one-row LinearClassifier, string labels",
                    string_labels=True)

    Xr, Yr, Tr = regression()
    m = LinearRegression().fit(Xr, Yr.ravel())
    node = helper.make_node("LinearRegressor", ["X"], ["Y"], name="LinReg", domain=ML,
                            coefficients=f32(m.coef_), intercepts=f32([m.intercept_]))
    regressor_case("linear_regressor", [node], Tr, m.predict(Tr).reshape(-1, 1),
                   "sklearn LinearRegression")
    Xr, Yr, Tr = regression(targets=2)
    m = Ridge(alpha=0.5).fit(Xr, Yr)
    node = helper.make_node("LinearRegressor", ["X"], ["Y"], name="Ridge", domain=ML,
                            coefficients=f32(m.coef_), intercepts=f32(m.intercept_), targets=2)
    regressor_case("linear_regressor_two_targets", [node], Tr.astype(np.float64), m.predict(Tr),
                   "sklearn Ridge with two targets, double input",
                   input_type=TensorProto.DOUBLE)


# ---- trees ----------------------------------------------------------------

def tree_attrs(prefix):
    keys = ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
            "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
            "nodes_hitrates", prefix + "_treeids", prefix + "_nodeids", prefix + "_ids",
            prefix + "_weights"]
    return {k: [] for k in keys}


def add_tree(attrs, prefix, tree, tree_id, leaf_weights, exact=False):
    """Append one sklearn tree; leaf_weights(node) -> [(target id, weight)]."""
    for i in range(tree.node_count):
        left, right = int(tree.children_left[i]), int(tree.children_right[i])
        leaf = left < 0
        attrs["nodes_treeids"].append(tree_id)
        attrs["nodes_nodeids"].append(i)
        attrs["nodes_featureids"].append(0 if leaf else int(tree.feature[i]))
        attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
        t = float(tree.threshold[i])
        attrs["nodes_values"].append(0.0 if leaf else (t if exact else float32_threshold(t)))
        attrs["nodes_truenodeids"].append(0 if leaf else left)
        attrs["nodes_falsenodeids"].append(0 if leaf else right)
        attrs["nodes_missing_value_tracks_true"].append(0)
        attrs["nodes_hitrates"].append(1.0)
        if leaf:
            for target, w in leaf_weights(i):
                attrs[prefix + "_treeids"].append(tree_id)
                attrs[prefix + "_nodeids"].append(i)
                attrs[prefix + "_ids"].append(target)
                attrs[prefix + "_weights"].append(float(w))


def as_float_attrs(attrs, prefix):
    for key in ("nodes_values", "nodes_hitrates", prefix + "_weights"):
        attrs[key] = f32(attrs[key])
    return attrs


def forest_classifier_node(model, attrs_extra=None, labels=None):
    classes = [int(c) for c in model.classes_]
    binary = len(classes) == 2
    attrs = tree_attrs("class")
    share = 1.0 / len(model.estimators_)
    for tree_id, est in enumerate(model.estimators_):
        tree = est.tree_

        def weights(i, tree=tree):
            counts = tree.value[i].ravel().astype(np.float64)
            p = counts / counts.sum() * share
            # Two classes: only class 1's share, under class id 0.
            return [(0, p[1])] if binary else list(enumerate(p))
        add_tree(attrs, "class", tree, tree_id, weights)
    attrs = as_float_attrs(attrs, "class")
    for key, value in (attrs_extra or {}).items():
        if key.endswith("_as_tensor"):
            # Version 3: the float list moves into a tensor attribute.
            plain = key[:-len("_as_tensor")]
            attrs[key] = numpy_helper.from_array(np.asarray(attrs.pop(plain), value), key)
        else:
            attrs[key] = value
    if labels is None:
        attrs["classlabels_int64s"] = classes
    else:
        attrs["classlabels_strings"] = labels
    return helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"],
                            name="Forest", domain=ML, post_transform="NONE", **attrs)


def gradient_boosting_classifier_node(model):
    classes = [int(c) for c in model.classes_]
    attrs = tree_attrs("class")
    rate = float(model.learning_rate)
    k_trees = model.estimators_.shape[1]
    for stage in range(model.estimators_.shape[0]):
        for k in range(k_trees):
            tree = model.estimators_[stage, k].tree_

            def weights(i, tree=tree, k=k):
                return [(k, tree.value[i].ravel()[0] * rate)]
            add_tree(attrs, "class", tree, stage * k_trees + k, weights)
    attrs = as_float_attrs(attrs, "class")
    base = model._raw_predict_init(np.zeros((1, model.n_features_in_), np.float32)).ravel()
    return helper.make_node(
        "TreeEnsembleClassifier", ["X"], ["label", "probabilities"], name="GradientBoosting",
        domain=ML, classlabels_int64s=classes, base_values=f32(base),
        post_transform="LOGISTIC" if len(classes) == 2 else "SOFTMAX", **attrs)


def regressor_tree_node(trees, targets, weights_of, aggregate="SUM", base=None, v3=False,
                        name="Trees"):
    attrs = tree_attrs("target")
    for tree_id, tree in enumerate(trees):
        add_tree(attrs, "target", tree, tree_id, lambda i, tree=tree: weights_of(tree, i), exact=v3)
    if v3:
        # Version 3: thresholds and weights as double tensors, so the
        # comparison is exactly sklearn's (float32 feature vs double).
        for key in ("nodes_values", "target_weights"):
            attrs[key + "_as_tensor"] = numpy_helper.from_array(
                np.asarray(attrs.pop(key), np.float64), key + "_as_tensor")
        attrs["nodes_hitrates"] = f32(attrs["nodes_hitrates"])
    else:
        attrs = as_float_attrs(attrs, "target")
    if base is not None:
        attrs["base_values"] = f32(base)
    return helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], name=name, domain=ML,
                            n_targets=targets, aggregate_function=aggregate,
                            post_transform="NONE", **attrs)


def tree_cases():
    X, y, T = iris()
    m = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, y)
    classifier_case("tree_classifier_forest_3class", [forest_classifier_node(m)], T, m.predict(T),
                    m.predict_proba(T), m.classes_, "sklearn RandomForestClassifier on iris",
                    zipmap=True)
    names = ["setosa", "versicolor", "virginica"]
    node = forest_classifier_node(m, {"nodes_values_as_tensor": np.float32,
                                      "class_weights_as_tensor": np.float64}, labels=names)
    classifier_case("tree_classifier_forest_strings_v3", [node], T,
                    [names[c] for c in m.predict(T)], m.predict_proba(T), names,
                    "the iris forest again: version 3 tensors, string labels", zipmap=True,
                    ml_opset=3, string_labels=True)
    X2, y2, T2 = two_class()
    m = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X2, y2)
    classifier_case("tree_classifier_forest_binary", [forest_classifier_node(m)], T2,
                    m.predict(T2), m.predict_proba(T2), m.classes_,
                    "sklearn RandomForestClassifier, two classes: one weight column")
    m = GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=0).fit(X2, y2)
    classifier_case("tree_classifier_gradient_boosting_binary",
                    [gradient_boosting_classifier_node(m)], T2, m.predict(T2),
                    m.predict_proba(T2), m.classes_,
                    "sklearn GradientBoostingClassifier, two classes (LOGISTIC)")
    m = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, y)
    classifier_case("tree_classifier_gradient_boosting_3class",
                    [gradient_boosting_classifier_node(m)], T, m.predict(T), m.predict_proba(T),
                    m.classes_, "sklearn GradientBoostingClassifier, three classes (SOFTMAX)",
                    zipmap=True, ml_opset=3)

    Xr, Yr, Tr = regression()
    m = GradientBoostingRegressor(n_estimators=8, max_depth=2, random_state=0).fit(Xr, Yr.ravel())
    rate = float(m.learning_rate)
    node = regressor_tree_node([e[0].tree_ for e in m.estimators_], 1,
                               lambda t, i: [(0, t.value[i].ravel()[0] * rate)],
                               base=m.init_.constant_.ravel(), name="GradientBoosting")
    regressor_case("tree_regressor_gradient_boosting", [node], Tr, m.predict(Tr).reshape(-1, 1),
                   "sklearn GradientBoostingRegressor")
    m = DecisionTreeRegressor(max_depth=4, random_state=0).fit(Xr, Yr.ravel())
    node = regressor_tree_node([m.tree_], 1, lambda t, i: [(0, t.value[i].ravel()[0])], v3=True,
                               name="DecisionTree")
    regressor_case("tree_regressor_decision_tree_v3", [node], Tr, m.predict(Tr).reshape(-1, 1),
                   "sklearn DecisionTreeRegressor, version 3 double tensors", ml_opset=3)
    Xr, Yr, Tr = regression(targets=2)
    m = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(Xr, Yr)
    node = regressor_tree_node([e.tree_ for e in m.estimators_], 2,
                               lambda t, i: list(enumerate(t.value[i].ravel())),
                               aggregate="AVERAGE", name="Forest")
    regressor_case("tree_regressor_forest_average_two_targets", [node], Tr, m.predict(Tr),
                   "sklearn RandomForestRegressor, two targets, AVERAGE")
    hand_made_tree_cases()


# A hand-written ensemble for what sklearn never exports: every node mode,
# NaN routing, MIN/MAX aggregation, int64 input. Two trees over 3 features:
#   tree 0: f0 < 1 ? (f1 >= 2 ? 10 : 20) : (f2 == 5 ? 30 : (f2 != 7 ? 40 : 50))
#   tree 1: f1 > 0 (NaN goes true) ? 1 : (f0 <= -1 ? 2 : 3)
HAND_NODES = [
    # tree, node, feature, mode, value, true, false, missing_true
    (0, 0, 0, "BRANCH_LT", 1.0, 1, 2, 0),
    (0, 1, 1, "BRANCH_GTE", 2.0, 3, 4, 0),
    (0, 2, 2, "BRANCH_EQ", 5.0, 5, 6, 0),
    (0, 3, 0, "LEAF", 0.0, 0, 0, 0),
    (0, 4, 0, "LEAF", 0.0, 0, 0, 0),
    (0, 5, 0, "LEAF", 0.0, 0, 0, 0),
    (0, 6, 2, "BRANCH_NEQ", 7.0, 7, 8, 0),
    (0, 7, 0, "LEAF", 0.0, 0, 0, 0),
    (0, 8, 0, "LEAF", 0.0, 0, 0, 0),
    (1, 0, 1, "BRANCH_GT", 0.0, 1, 2, 1),
    (1, 1, 0, "LEAF", 0.0, 0, 0, 0),
    (1, 2, 0, "BRANCH_LEQ", -1.0, 3, 4, 0),
    (1, 3, 0, "LEAF", 0.0, 0, 0, 0),
    (1, 4, 0, "LEAF", 0.0, 0, 0, 0),
]
HAND_LEAVES = {(0, 3): 10.0, (0, 4): 20.0, (0, 5): 30.0, (0, 7): 40.0, (0, 8): 50.0,
               (1, 1): 1.0, (1, 3): 2.0, (1, 4): 3.0}
HAND_X = np.array([[0, 3, 0], [0, 1, 0], [2, 0, 5], [2, 0, 6], [2, 0, 7], [-2, -1, 7],
                   [0.5, np.nan, 5], [np.nan, 2, 7], [3, 0.5, np.nan], [-1, -3, 5]],
                  dtype=np.float32)


def hand_leaf(tree, x):
    """numpy reference of the traversal (ONNX Runtime's rules)."""
    nodes = {(t, n): (f, mode, v, tr, fa, miss) for t, n, f, mode, v, tr, fa, miss in HAND_NODES}
    node = 0
    while True:
        f, mode, v, tr, fa, miss = nodes[(tree, node)]
        if mode == "LEAF":
            return HAND_LEAVES[(tree, node)]
        a = x[f]
        go = {"BRANCH_LEQ": a <= v, "BRANCH_LT": a < v, "BRANCH_GTE": a >= v, "BRANCH_GT": a > v,
              "BRANCH_EQ": a == v, "BRANCH_NEQ": a != v}[mode]
        if not go and miss and np.isnan(a):
            go = True
        node = tr if go else fa


def hand_node(aggregate, base=None, leaves=None):
    attrs = {"nodes_treeids": [n[0] for n in HAND_NODES], "nodes_nodeids": [n[1] for n in HAND_NODES],
             "nodes_featureids": [n[2] for n in HAND_NODES], "nodes_modes": [n[3] for n in HAND_NODES],
             "nodes_values": [n[4] for n in HAND_NODES],
             "nodes_truenodeids": [n[5] for n in HAND_NODES],
             "nodes_falsenodeids": [n[6] for n in HAND_NODES],
             "nodes_missing_value_tracks_true": [n[7] for n in HAND_NODES]}
    leaves = HAND_LEAVES if leaves is None else leaves
    attrs.update(target_treeids=[t for t, _ in leaves], target_nodeids=[n for _, n in leaves],
                 target_ids=[0] * len(leaves), target_weights=list(leaves.values()))
    if base is not None:
        attrs["base_values"] = base
    return helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], name="Hand", domain=ML,
                            n_targets=1, aggregate_function=aggregate, **attrs)


def hand_made_tree_cases():
    per_tree = np.array([[hand_leaf(t, x) for t in (0, 1)] for x in HAND_X])
    for aggregate, reduce in (("SUM", np.sum), ("AVERAGE", np.mean), ("MIN", np.min),
                              ("MAX", np.max)):
        expected = reduce(per_tree, axis=1) + 0.5
        regressor_case("tree_regressor_modes_%s" % aggregate.lower(),
                       [hand_node(aggregate, base=[0.5])], HAND_X, expected.reshape(-1, 1),
                       "hand-made trees: every node mode, NaN routing, %s" % aggregate)
    Xi = np.array([[0, 3, 0], [2, 0, 5], [2, 0, 6], [-2, -1, 7], [3, 1, 7]], dtype=np.int64)
    expected = np.array([[sum(hand_leaf(t, x.astype(np.float64)) for t in (0, 1))] for x in Xi])
    regressor_case("tree_regressor_int64_input", [hand_node("SUM")], Xi, expected,
                   "hand-made trees on an int64 input", input_type=TensorProto.INT64)


def tree_error_cases():
    def bad(name, edit, error, at_run=False):
        node = hand_node("SUM")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        edit(attrs)
        attrs = {k: [s.decode() if isinstance(s, bytes) else s for s in v]
                 if isinstance(v, list) else (v.decode() if isinstance(v, bytes) else v)
                 for k, v in attrs.items()}
        node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], name="Hand", domain=ML,
                                **attrs)
        width = 2 if at_run else 3
        model = make_model(name, [node], [tensor_info("X", TensorProto.FLOAT, [None, width])],
                           [tensor_info("Y", TensorProto.FLOAT, [None, 1])])
        inputs = [HAND_X[:2, :width]] if at_run else None
        write_case(name, model, inputs, None, "a corrupt tree ensemble must be refused",
                   check=False, expect_error=error)

    def set_item(key, i, v):
        def edit(a):
            a[key][i] = v
        return edit
    bad("tree_error_missing_child", set_item("nodes_truenodeids", 1, 42), "does not exist")
    bad("tree_error_cycle", set_item("nodes_falsenodeids", 6, 0), "cycle")
    bad("tree_error_duplicate_node", set_item("nodes_nodeids", 4, 3), "appears twice")
    bad("tree_error_target_out_of_range", set_item("target_ids", 0, 3), "outside")
    bad("tree_error_weight_on_missing_node", set_item("target_nodeids", 0, 99), "does not exist")
    bad("tree_error_unknown_mode", set_item("nodes_modes", 0, "BRANCH_SOMETIMES"), "unknown mode")
    bad("tree_error_lengths", lambda a: a["nodes_values"].pop(), "differ in length")
    bad("tree_error_feature_past_input", lambda a: None, "has 2 features", at_run=True)


# ---- preprocessing and encoders ---------------------------------------------

def simple_case(name, node, inputs, outputs, source, ml_opset=1, input_infos=None,
                output_infos=None):
    infos_in = input_infos or [tensor_info(n, numpy_helper.from_array(np.asarray(v)).data_type,
                                           list(np.asarray(v).shape))
                               for n, v in zip(node.input, inputs)]
    infos_out = output_infos or [tensor_info(n, numpy_helper.from_array(np.asarray(v)).data_type,
                                             list(np.asarray(v).shape))
                                 for n, v in zip(node.output, outputs)]
    write_case(name, make_model(name, [node], infos_in, infos_out, ml_opset), inputs, outputs,
               source)


def preprocess_cases():
    X, _, T = iris()
    scaler = StandardScaler().fit(X)
    simple_case("scaler_standard", helper.make_node(
        "Scaler", ["X"], ["Y"], domain=ML, offset=f32(scaler.mean_), scale=f32(1 / scaler.scale_)),
        [T], [scaler.transform(T).astype(np.float32)], "sklearn StandardScaler")
    Ti = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    simple_case("scaler_int64_broadcast", helper.make_node(
        "Scaler", ["X"], ["Y"], domain=ML, offset=[1.5], scale=[0.5]),
        [Ti], [((Ti - 1.5) * 0.5).astype(np.float32)], "Scaler with one offset/scale, int64 input")
    M = np.array([[1, -2, 3, 0.5], [0, 0, 0, 0], [-4, 1, 2, 2]], dtype=np.float32)
    l1 = M / np.maximum(np.abs(M).sum(axis=1, keepdims=True), 1e-30)
    l2 = M / np.maximum(np.sqrt((M * M).sum(axis=1, keepdims=True)), 1e-30)
    mx = M / np.where(M.max(axis=1, keepdims=True) == 0, 1, M.max(axis=1, keepdims=True))
    for norm, expected in (("L1", l1), ("L2", l2), ("MAX", mx)):
        simple_case("normalizer_%s" % norm.lower(), helper.make_node(
            "Normalizer", ["X"], ["Y"], domain=ML, norm=norm), [M], [expected.astype(np.float32)],
            "sklearn Normalizer(norm=%r); MAX divides by the signed row maximum" % norm.lower())
    simple_case("binarizer", helper.make_node("Binarizer", ["X"], ["Y"], domain=ML, threshold=0.7),
                [M], [(M > 0.7).astype(np.float32)], "sklearn Binarizer(threshold=0.7)")
    Mn = M.copy()
    Mn[0, 1] = np.nan
    Mn[2, 3] = np.nan
    means = np.nanmean(Mn, axis=0)
    simple_case("imputer_nan_mean", helper.make_node(
        "Imputer", ["X"], ["Y"], domain=ML, imputed_value_floats=f32(means),
        replaced_value_float=float("nan")), [Mn],
        [np.where(np.isnan(Mn), means.astype(np.float32), Mn).astype(np.float32)],
        "sklearn SimpleImputer(strategy='mean')")
    Mi = np.array([[1, -1, 3], [-1, 5, -1]], dtype=np.int64)
    simple_case("imputer_int64", helper.make_node(
        "Imputer", ["X"], ["Y"], domain=ML, imputed_value_int64s=[7], replaced_value_int64=-1),
        [Mi], [np.where(Mi == -1, 7, Mi)], "Imputer on int64 with one value")
    idx = np.array([3, 0, 3], dtype=np.int64)
    simple_case("array_feature_extractor", helper.make_node(
        "ArrayFeatureExtractor", ["X", "Y"], ["Z"], domain=ML), [M, idx], [M[:, idx]],
        "column selection as skl2onnx emits for ColumnTransformer")
    S = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
    simple_case("array_feature_extractor_strings", helper.make_node(
        "ArrayFeatureExtractor", ["X", "Y"], ["Z"], domain=ML), [S, np.array([2], np.int64)],
        [S[:, [2]]], "string columns")
    A = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32)
    B = np.array([[7], [8], [9]], dtype=np.int64)
    C = np.array([[0.5, 1.5, 2.5], [3.5, 4.5, 5.5], [6.5, 7.5, 8.5]], dtype=np.float64)
    simple_case("feature_vectorizer", helper.make_node(
        "FeatureVectorizer", ["A", "B", "C"], ["Y"], domain=ML, inputdimensions=[2, 1, 2]),
        [A, B, C], [np.concatenate([A, B, C[:, :2]], axis=1).astype(np.float32)],
        "concatenation with casting and truncation to inputdimensions")
    bad_index = helper.make_node("ArrayFeatureExtractor", ["X", "Y"], ["Z"], domain=ML)
    model = make_model("array_feature_extractor_bad_index", [bad_index],
                       [tensor_info("X", TensorProto.FLOAT, [3, 4]),
                        tensor_info("Y", TensorProto.INT64, [1])],
                       [tensor_info("Z", TensorProto.FLOAT, [3, 1])])
    write_case("array_feature_extractor_bad_index", model, [M, np.array([4], np.int64)], None,
               "index past the last axis", expect_error="outside")


def encoder_cases():
    cats = np.array([[3, 1], [7, 3], [1, 9]], dtype=np.int64)
    values = [1, 3, 7]
    onehot = (cats[..., None] == np.array(values)).astype(np.float32)
    simple_case("one_hot_encoder_int64", helper.make_node(
        "OneHotEncoder", ["X"], ["Y"], domain=ML, cats_int64s=values, zeros=1), [cats], [onehot],
        "OneHotEncoder, unknown category 9 gives a zero row")
    words = np.array([["red", "blue"], ["green", "red"]], dtype=object)
    names = ["blue", "green", "red"]
    onehot = (words[..., None] == np.array(names, dtype=object)).astype(np.float32)
    simple_case("one_hot_encoder_strings", helper.make_node(
        "OneHotEncoder", ["X"], ["Y"], domain=ML, cats_strings=names), [words], [onehot],
        "OneHotEncoder on strings")
    model = make_model("one_hot_encoder_unknown_refused", [helper.make_node(
        "OneHotEncoder", ["X"], ["Y"], domain=ML, cats_int64s=values, zeros=0)],
        [tensor_info("X", TensorProto.INT64, [3, 2])],
        [tensor_info("Y", TensorProto.FLOAT, [3, 2, 3])])
    write_case("one_hot_encoder_unknown_refused", model, [cats], None,
               "zeros=0 and a category not in cats_int64s", expect_error="not a known category")

    fruit = np.array(["apple", "pear", "kiwi", "apple", "plum"], dtype=object)
    simple_case("label_encoder_v2_string_to_int", helper.make_node(
        "LabelEncoder", ["X"], ["Y"], domain=ML, keys_strings=["apple", "kiwi", "pear"],
        values_int64s=[0, 1, 2], default_int64=-1), [fruit],
        [np.array([0, 2, 1, 0, -1], np.int64)], "sklearn LabelEncoder.transform", ml_opset=2)
    codes = np.array([[2, 0], [5, 1]], dtype=np.int64)
    simple_case("label_encoder_v2_int_to_string", helper.make_node(
        "LabelEncoder", ["X"], ["Y"], domain=ML, keys_int64s=[0, 1, 2],
        values_strings=["apple", "kiwi", "pear"], default_string="?"), [codes],
        [np.array([["pear", "apple"], ["?", "kiwi"]], dtype=object)],
        "sklearn LabelEncoder.inverse_transform", ml_opset=2)
    reals = np.array([0.5, np.nan, 2.0, 7.0], dtype=np.float32)
    simple_case("label_encoder_v2_float_to_float", helper.make_node(
        "LabelEncoder", ["X"], ["Y"], domain=ML, keys_floats=[0.5, 2.0, float("nan")],
        values_floats=[10.0, 20.0, -1.0]), [reals],
        [np.array([10.0, -1.0, 20.0, -0.0], np.float32)],
        "float keys, NaN key, default_float -0.0", ml_opset=2)
    simple_case("label_encoder_v1_string_to_index", helper.make_node(
        "LabelEncoder", ["X"], ["Y"], domain=ML, classes_strings=["apple", "kiwi", "pear"],
        default_int64=-7), [fruit], [np.array([0, 2, 1, 0, -7], np.int64)],
        "LabelEncoder version 1 (strings to index)", ml_opset=1)
    simple_case("label_encoder_v1_index_to_string", helper.make_node(
        "LabelEncoder", ["X"], ["Y"], domain=ML, classes_strings=["apple", "kiwi", "pear"]),
        [np.array([1, 3, -1, 0], np.int64)],
        [np.array(["kiwi", "_Unused", "_Unused", "apple"], dtype=object)],
        "LabelEncoder version 1 (index to strings, default_string)", ml_opset=1)
    simple_case("category_mapper", helper.make_node(
        "CategoryMapper", ["X"], ["Y"], domain=ML, cats_strings=["a", "b", "c"],
        cats_int64s=[10, 20, 30], default_int64=0), [np.array(["b", "z", "c"], dtype=object)],
        [np.array([20, 0, 30], np.int64)], "CategoryMapper strings to int64")
    map_in = helper.make_value_info("X", map_type(TensorProto.STRING))
    node = helper.make_node("DictVectorizer", ["X"], ["Y"], domain=ML,
                            string_vocabulary=["a", "c", "b", "z"])
    simple_case("dict_vectorizer", node, [map_proto(["a", "c"], [np.float32(4), np.float32(8)])],
                [np.array([[4, 8, 0, 0]], np.float32)], "sklearn DictVectorizer on one dict",
                input_infos=[map_in])
    probs = np.array([[0.25, 0.75], [0.9, 0.1]], dtype=np.float32)
    simple_case("zipmap_strings", helper.make_node(
        "ZipMap", ["X"], ["Z"], domain=ML, classlabels_strings=["cat", "dog"]), [probs],
        [zipmap_value(probs, ["cat", "dog"], "Z")], "ZipMap with string keys",
        output_infos=[zipmap_info("Z", TensorProto.STRING)])


def svm_error_cases():
    def bad(name, attrs, error):
        base = dict(classlabels_ints=[0, 1, 2], vectors_per_class=[1, 1, 1],
                    support_vectors=[0.0] * 6, coefficients=[1.0] * 6, rho=[0.0] * 3,
                    kernel_type="RBF", kernel_params=[0.5, 0.0, 3.0])
        base.update(attrs)
        node = helper.make_node("SVMClassifier", ["X"], ["label", "probabilities"], name="SVM",
                                domain=ML, **base)
        model = make_model(name, [node], [tensor_info("X", TensorProto.FLOAT, [None, 2])],
                           [tensor_info("label", TensorProto.INT64, [None]),
                            tensor_info("probabilities", TensorProto.FLOAT, [None, 3])])
        write_case(name, model, None, None, "inconsistent SVM attributes must be refused",
                   check=False, expect_error=error)
    bad("svm_error_vectors_per_class", {"vectors_per_class": [1, 1]}, "vectors_per_class")
    bad("svm_error_short_rho", {"rho": [0.0]}, "rho has 1 values")
    bad("svm_error_short_coefficients", {"coefficients": [1.0, 2.0]}, "coefficients")
    bad("svm_error_unknown_kernel", {"kernel_type": "CUBIC"}, "unknown kernel_type")
    bad("svm_error_prob_sizes", {"prob_a": [1.0, 1.0, 1.0], "prob_b": [1.0]}, "prob_a has 3")


def book_case():
    """The book's iris model (skl2onnx 1.7 export: Scaler, SVMClassifier, Cast,
    ZipMap) on the first rows of its batch data, against ONNX Runtime's
    outputs shipped beside it."""
    book = os.environ.get("INFERD_BOOK", "/work/shared/book")
    if not os.path.exists(os.path.join(book, "iris_svc.onnx")):
        print("skipping book_iris_svc: %s not found" % book)
        return
    model = onnx.load(os.path.join(book, "iris_svc.onnx"))
    with open(os.path.join(book, "data.json")) as f:
        X = np.array(json.load(f), dtype=np.float32)[:40]
    with open(os.path.join(book, "data.expected.json")) as f:
        expected = json.load(f)
    labels = np.array(expected["output_label"]["data"][:40], dtype=np.int64)
    probs = np.array(expected["probabilities"]["data"], dtype=np.float32).reshape(-1, 3)[:40]
    write_case("book_iris_svc", model, [X],
               [labels, zipmap_value(probs, [0, 1, 2], "output_probability")],
               "the book's iris_svc.onnx on data.json rows 0-39, ONNX Runtime's outputs")


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    svm_cases()
    linear_cases()
    tree_cases()
    tree_error_cases()
    svm_error_cases()
    preprocess_cases()
    encoder_cases()
    book_case()
    print("wrote %d cases under %s" % (len(os.listdir(ROOT)), os.path.normpath(ROOT)))


if __name__ == "__main__":
    main()
