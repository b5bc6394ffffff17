#!/usr/bin/env python3
"""Make offline stand-ins for InsightFace buffalo_l's two face models.

Writes into OUT (default models/faces/buffalo_l), so that the real
buffalo_l.zip unpacks over them as it is:

  det_10g.onnx    SCRFD signature: input `input.1` float32 [1, 3, ?, ?]
                  (BGR image swapped to RGB, (x - 127.5) / 128), nine outputs
                  in insightface's order: scores for strides 8, 16, 32
                  ([N, 1] each), then boxes ([N, 4]), then keypoints
                  ([N, 10]), N = (H / stride) * (W / stride) * 2 anchors,
                  rows ordered (y, x, anchor). Output names are the real
                  model's (448 471 494 451 474 497 454 477 500).
  w600k_r50.onnx  ArcFace signature: input `input.1` float32 [None, 3, 112,
                  112], one output `683` float32 [None, 512]. No Sub/Mul
                  among the first nodes, so insightface's ArcFaceONNX picks
                  input mean = std = 127.5, as it does for the real model.
  meta.json       what these are, the seed, and that they are not real.

The detector is CONSTRUCTED, not trained: per stride, an average pool to
the stride's grid, a 3x3 conv whose hand-set weights compute colour
differences (R-G, G-B, brightness, blueness), ReLU, then 1x1 heads. The
score head responds to skin-coloured regions (R > G > B, not too saturated),
so real photos of people give a handful of detections and flat grey, blue or
green images give none; an orange cat or a wooden table counts as a face.
Box and keypoint heads are a fixed face-shaped layout around each anchor
plus small seeded random content-dependent terms, so boxes and landmarks
move with the image (landmarks form a plausible face, so alignment works).

The recognition net is a real conv net (4 strided 3x3 convs with PReLU, a
linear layer to 512) with seeded random weights: its embeddings are
deterministic but meaningless.

Real weights, where the internet is reachable (about 280 MB):

  curl -L -o /tmp/buffalo_l.zip \\
    https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip
  unzip -o /tmp/buffalo_l.zip -d models/faces/buffalo_l

(the zip holds det_10g.onnx, w600k_r50.onnx and three models switchyard
does not use; delete meta.json afterwards so nothing claims they are random.)
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DET_OUTPUTS = ["448", "471", "494", "451", "474", "497", "454", "477", "500"]
STRIDES = [8, 16, 32]
SCRIPT_VERSION = 1
DOG_GAIN = 8.0


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def make_detector(seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    # Colour-difference features; the input channels are R, G, B in [-1, 1).
    feat = np.zeros((8, 3), dtype=np.float32)
    bias = np.zeros(8, dtype=np.float32)
    feat[0] = [1, -1, 0]; bias[0] = -0.08   # R above G
    feat[1] = [0, 1, -1]; bias[1] = -0.02   # G above B
    feat[2] = [1, -1, 0]; bias[2] = -0.45   # far too red
    feat[3] = [1, 0, 0]; bias[3] = 0.1      # bright enough
    feat[4] = [0, -1, 1]; bias[4] = 0.0     # bluish
    feat[5:] = rng.normal(0, 0.5, (3, 3)); bias[5:] = rng.normal(0, 0.1, 3)
    conv_w = np.repeat(feat[:, :, None, None], 9, axis=2).reshape(8, 3, 3, 3) / 9.0
    inits += [_init("feat_w", conv_w), _init("feat_b", bias)]
    score_w = np.zeros((2, 8), dtype=np.float32)
    score_w[:, 0], score_w[:, 1], score_w[:, 2], score_w[:, 3], score_w[:, 4] = 12, 12, -30, 0, -20
    score_w[:, 5:] = rng.normal(0, 0.05, (2, 3))
    # Face-shaped layout in stride units around the anchor: box half-size 2,
    # eyes, nose, mouth corners as in the ArcFace template.
    box = np.tile([3.2, 3.6, 3.2, 3.2], 2)
    kps = np.tile([-1.2, -0.9, 1.2, -0.9, 0.0, 0.3, -1.0, 1.5, 1.0, 1.5], 2)
    outputs = {"score": [], "bbox": [], "kps": []}
    for i, stride in enumerate(STRIDES):
        pooled = f"pool{stride}"
        nodes.append(helper.make_node("AveragePool", ["input.1"], [pooled], kernel_shape=[stride, stride], strides=[stride, stride], name=f"AveragePool_{stride}"))
        nodes.append(helper.make_node("Conv", [pooled, "feat_w", "feat_b"], [f"f{stride}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=f"Conv_feat_{stride}"))
        nodes.append(helper.make_node("Relu", [f"f{stride}"], [f"r{stride}"], name=f"Relu_{stride}"))
        heads = {
            "score": (score_w, np.full(2, [-4.0, -3.5, -3.0][i], dtype=np.float32), 1),
            "bbox": (rng.normal(0, 0.15, (8, 8)), box, 4),
            "kps": (rng.normal(0, 0.08, (20, 8)), kps, 10),
        }
        for head, (w, b, width) in heads.items():
            w = np.asarray(w, dtype=np.float32)
            inits += [_init(f"{head}{stride}_w", w[:, :, None, None]), _init(f"{head}{stride}_b", b)]
            raw = f"{head}{stride}_raw"
            nodes.append(helper.make_node("Conv", [f"r{stride}", f"{head}{stride}_w", f"{head}{stride}_b"], [raw], kernel_shape=[1, 1], name=f"Conv_{head}_{stride}"))
            if head == "score":
                # Keep only local maxima of the smoothed logit (one peak per skin blob).
                n = f"score{stride}"
                if not any(t.name == "lum_w" for t in inits):
                    inits += [_init("lum_w", np.array([0.299, 0.587, 0.114])[None, :, None, None]), _init("dog_gain", [DOG_GAIN])]
                nodes += [
                    # Centre-surround luminance: a face is usually brighter than what is around it.
                    helper.make_node("Conv", [pooled, "lum_w"], [n + "_lum"], kernel_shape=[1, 1], name=f"Conv_lum_{stride}"),
                    helper.make_node("AveragePool", [n + "_lum"], [n + "_sur"], kernel_shape=[9, 9], pads=[4, 4, 4, 4], name=f"AveragePool_lum_{stride}"),
                    helper.make_node("Sub", [n + "_lum", n + "_sur"], [n + "_dog"], name=f"Sub_lum_{stride}"),
                    helper.make_node("Mul", [n + "_dog", "dog_gain"], [n + "_dogw"], name=f"Mul_lum_{stride}"),
                    helper.make_node("Add", [raw, n + "_dogw"], [n + "_logit"], name=f"Add_lum_{stride}"),
                    helper.make_node("AveragePool", [n + "_logit"], [n + "_avg"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], name=f"AveragePool_score_{stride}"),
                    helper.make_node("MaxPool", [n + "_avg"], [n + "_max"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=f"MaxPool_score_{stride}"),
                    helper.make_node("Equal", [n + "_avg", n + "_max"], [n + "_peak"], name=f"Equal_score_{stride}"),
                    helper.make_node("Cast", [n + "_peak"], [n + "_peakf"], to=TensorProto.FLOAT, name=f"Cast_score_{stride}"),
                    helper.make_node("Sigmoid", [n + "_avg"], [n + "_sig"], name=f"Sigmoid_{stride}"),
                    helper.make_node("Mul", [n + "_sig", n + "_peakf"], [raw + "_s"], name=f"Mul_score_{stride}"),
                ]
                raw += "_s"
            nodes.append(helper.make_node("Transpose", [raw], [raw + "_t"], perm=[0, 2, 3, 1], name=f"Transpose_{head}_{stride}"))
            shape = f"shape_{width}"
            if not any(t.name == shape for t in inits):
                inits.append(numpy_helper.from_array(np.array([-1, width], dtype=np.int64), shape))
            outputs[head].append((raw + "_t", shape, width, stride))
    order = outputs["score"] + outputs["bbox"] + outputs["kps"]
    graph_outputs = []
    for name, (src, shape, width, stride) in zip(DET_OUTPUTS, order):
        nodes.append(helper.make_node("Reshape", [src, shape], [name], name=f"Reshape_{name}"))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"anchors_s{stride}", width]))
    graph = helper.make_graph(
        nodes,
        "scrfd_10g_standin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])],
        graph_outputs,
        inits,
    )
    return graph


def make_recognizer(seed: int) -> onnx.GraphProto:
    rng = np.random.default_rng(seed + 1)
    nodes, inits = [], []
    x = "input.1"
    channels = [3, 32, 64, 128, 128]
    for i in range(4):
        cin, cout = channels[i], channels[i + 1]
        w = rng.normal(0, np.sqrt(2.0 / (cin * 9)), (cout, cin, 3, 3))
        inits += [_init(f"conv{i}_w", w), _init(f"conv{i}_b", rng.normal(0, 0.01, cout)), _init(f"prelu{i}", np.full((cout, 1, 1), 0.25))]
        nodes.append(helper.make_node("Conv", [x, f"conv{i}_w", f"conv{i}_b"], [f"c{i}"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], name=f"Conv_{i}"))
        nodes.append(helper.make_node("PRelu", [f"c{i}", f"prelu{i}"], [f"p{i}"], name=f"PRelu_{i}"))
        x = f"p{i}"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1, name="Flatten_0"))
    features = 128 * 7 * 7
    inits += [_init("fc_w", rng.normal(0, np.sqrt(1.0 / features), (512, features))), _init("fc_b", np.zeros(512))]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["683"], transB=1, name="Gemm_0"))
    return helper.make_graph(
        nodes,
        "arcface_r50_standin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        inits,
    )


def save(graph: onnx.GraphProto, path: str) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="switchyard/tools/make_face_models.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    tmp = path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/faces/buffalo_l")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    meta_path = os.path.join(args.out, "meta.json")
    meta = {"random_weights": True, "detector": "constructed skin-colour SCRFD stand-in", "recognizer": "seeded random conv net", "seed": args.seed, "script_version": SCRIPT_VERSION}
    if not args.force and os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta and all(os.path.exists(os.path.join(args.out, n)) for n in ("det_10g.onnx", "w600k_r50.onnx")):
                print(f"{args.out}: up to date")
                return
    save(make_detector(args.seed), os.path.join(args.out, "det_10g.onnx"))
    save(make_recognizer(args.seed), os.path.join(args.out, "w600k_r50.onnx"))
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {args.out}/det_10g.onnx, w600k_r50.onnx, meta.json")


if __name__ == "__main__":
    main()
