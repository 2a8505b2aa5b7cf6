"""Tiny insightface models in the real ONNX signatures (no insightface weights are reachable
here): an SCRFD detector with 9 outputs (3 strides x scores, boxes, 5 keypoints; 2 anchors)
and an ArcFace recogniser (112 x 112 -> 512), both loaded by insightface's own classes.

The SCRFD graph is one strided convolution per stride with zero weights and fixed biases, so
its output is known: every stride-32 anchor scores sigmoid(5) = 0.993 (strides 8 and 16
score ~0), and decodes to a 64 x 64 box centred on the anchor with a face-like landmark
layout. ArcFace is a strided convolution and a dense layer with seeded random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)
ANCHORS = 2
#: keypoint offsets from the anchor centre, in stride units (x, y) x 5
KPS = np.array([-0.3, -0.3, 0.3, -0.3, 0.0, 0.0, -0.25, 0.3, 0.25, 0.3], dtype=np.float32)
BOX = 1.0  # distance to each side, in stride units: a 64 x 64 box at stride 32


def _head(name: str, stride: int, channels: int, bias: np.ndarray, per_anchor: int, nodes, inits) -> str:
    w = numpy_helper.from_array(np.zeros((channels, 3, stride, stride), np.float32), f"{name}_w")
    b = numpy_helper.from_array(bias.astype(np.float32), f"{name}_b")
    shape = numpy_helper.from_array(np.array([-1, per_anchor], np.int64), f"{name}_shape")
    inits += [w, b, shape]
    nodes += [
        helper.make_node(
            "Conv",
            ["input.1", w.name, b.name],
            [f"{name}_c"],
            kernel_shape=[stride, stride],
            strides=[stride, stride],
            name=f"Conv_{name}",
        ),  # fmt: skip
        helper.make_node("Transpose", [f"{name}_c"], [f"{name}_t"], perm=[0, 2, 3, 1], name=f"T_{name}"),
    ]
    out = f"{name}_out"
    if name.startswith("score"):
        nodes += [
            helper.make_node("Reshape", [f"{name}_t", shape.name], [f"{name}_r"], name=f"R_{name}"),
            helper.make_node("Sigmoid", [f"{name}_r"], [out], name=f"S_{name}"),
        ]
    else:
        nodes.append(helper.make_node("Reshape", [f"{name}_t", shape.name], [out], name=f"R_{name}"))
    return out


def make_scrfd(path: Path, size: int = 640) -> Path:
    nodes: list = []
    inits: list = []
    outputs = {"score": [], "bbox": [], "kps": []}
    for s in STRIDES:
        score_bias = np.full(ANCHORS, 5.0 if s == 32 else -12.0)
        outputs["score"].append(_head(f"score{s}", s, ANCHORS, score_bias, 1, nodes, inits))
        outputs["bbox"].append(_head(f"bbox{s}", s, 4 * ANCHORS, np.full(4 * ANCHORS, BOX), 4, nodes, inits))
        outputs["kps"].append(_head(f"kps{s}", s, 10 * ANCHORS, np.tile(KPS, ANCHORS), 10, nodes, inits))
    # insightface reads the outputs in this order: scores, boxes, keypoints, each by stride
    widths = {"score": 1, "bbox": 4, "kps": 10}
    infos = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, widths[kind]])
        for kind in ("score", "bbox", "kps")
        for name in outputs[kind]
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        infos,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_arcface(path: Path, dim: int = 512, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    conv_w = numpy_helper.from_array(rng.normal(0, 0.05, (8, 3, 8, 8)).astype(np.float32), "conv_w")
    fc_w = numpy_helper.from_array(rng.normal(0, 0.05, (8 * 14 * 14, dim)).astype(np.float32), "fc_w")
    fc_b = numpy_helper.from_array(np.zeros(dim, np.float32), "fc_b")
    nodes = [
        helper.make_node(
            "Conv", ["input.1", "conv_w"], ["c"], kernel_shape=[8, 8], strides=[8, 8], name="Conv_0"
        ),
        helper.make_node("Relu", ["c"], ["r"], name="Relu_1"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="Flatten_2"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["683"], name="Gemm_3"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", dim])],
        [conv_w, fc_w, fc_b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_pack(models_dir: Path, pack: str = "buffalo_l") -> Path:
    """``<models_dir>/insightface/<pack>/{det_10g,w600k_r50}.onnx``, as FaceAnalysis unpacks them."""
    target = models_dir / "insightface" / pack
    target.mkdir(parents=True, exist_ok=True)
    make_scrfd(target / "det_10g.onnx")
    make_arcface(target / "w600k_r50.onnx")
    return target
