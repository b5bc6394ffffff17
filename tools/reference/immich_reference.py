"""The Immich reference: what Immich's ML service computes, in Python.

Applies the steps of Immich's service (immich-app/immich,
machine-learning/immich_ml: `models/transforms.py`, `models/clip/visual.py`,
`models/clip/textual.py`, `models/facial_recognition/detection.py` and
`recognition.py`, `main.py`) with PIL, numpy, Hugging Face tokenizers,
insightface and onnxruntime, on a model cache in Immich's layout, and dumps
the answers, for tests/tests/immich_parity.rs to compare with switchyard's
`POST /predict`. It is written from those files' behaviour, not copied:

* decode: `Image.open(bytes)`, `load()`, `convert("RGB")` unless RGB;
  `imageWidth`/`imageHeight` are that image's size (no EXIF transpose).
* CLIP visual (`OpenClipVisualEncoder`): `resize_pil` (the shorter side to
  `size`, the other `int((long / short) * size)`, PIL BICUBIC whatever
  preprocess_cfg's `interpolation` says, as Immich does), `crop_pil`
  (`left = int(W / 2 - size / 2)`), `/ 255.0` in float32, then
  `x *= 1 / std; x -= mean / std`, CHW, batch 1, input `image`; the answer
  is the model's output row as it is.
* CLIP textual (`OpenClipTextualEncoder`): `clean_text` (whitespace runs to
  one space, stripped; punctuation removed and lowercased only when
  config.json's `text_cfg.tokenizer_kwargs.clean` is `canonicalize`), then
  `Tokenizer.from_file(textual/tokenizer.json)` with padding to
  `text_cfg.context_length` (77 by default) using tokenizer_config.json's
  `pad_token`, truncation to the same length; int32 [1, L], input `text`.
* faces: insightface's `RetinaFace` on the detection model, prepared with
  `det_thresh=minScore` and `input_size=(640, 640)`, on the RGB image
  reversed to BGR; boxes `round()`ed (numpy: half to even), scores as they
  are; `norm_crop` of each face's landmarks and `ArcFaceONNX.get_feat` of the
  crops (not normalised: Immich stores the raw output).

Usage:
  immich_reference.py --cache DIR --clip NAME --faces NAME --min-score S[,S...] \\
      --texts-json FILE IMAGES...    prints one JSON object on stdout: per image
      imageWidth, imageHeight, clip (floats), faces (per min score as given:
      [{boundingBox, score, embedding}]); per text tokens and clip.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import string  # noqa: E402
from io import BytesIO  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

PUNCTUATION = str.maketrans("", "", string.punctuation)


def session(path: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def decode(data: bytes) -> Image.Image:
    img = Image.open(BytesIO(data))
    img.load()
    return img if img.mode == "RGB" else img.convert("RGB")


def floats(a) -> list[float]:
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


class Visual:
    def __init__(self, folder: str):
        with open(os.path.join(folder, "visual", "preprocess_cfg.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        size = cfg["size"]
        self.size = size[0] if isinstance(size, list) else size
        self.mean = np.array(cfg["mean"], dtype=np.float32)
        self.std = np.array(cfg["std"], dtype=np.float32)
        self.session = session(os.path.join(folder, "visual", "model.onnx"))

    def pixels(self, img: Image.Image) -> np.ndarray:
        s = self.size
        if img.width < img.height:
            img = img.resize((s, int((img.height / img.width) * s)), resample=Image.Resampling.BICUBIC)
        else:
            img = img.resize((int((img.width / img.height) * s), s), resample=Image.Resampling.BICUBIC)
        left = int((img.size[0] / 2) - (s / 2))
        upper = int((img.size[1] / 2) - (s / 2))
        img = img.crop((left, upper, left + s, upper + s))
        x = np.asarray(img, dtype=np.float32) / 255.0
        x *= 1.0 / self.std
        x -= self.mean / self.std
        return np.expand_dims(x.transpose(2, 0, 1), 0)

    def embed(self, img: Image.Image) -> list[float]:
        return floats(self.session.run(None, {"image": self.pixels(img)})[0][0])


class Textual:
    def __init__(self, folder: str):
        from tokenizers import Tokenizer

        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            text_cfg = json.load(f)["text_cfg"]
        with open(os.path.join(folder, "textual", "tokenizer_config.json"), encoding="utf-8") as f:
            pad_token = json.load(f)["pad_token"]
        length = text_cfg.get("context_length", 77)
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "textual", "tokenizer.json"))
        self.tokenizer.enable_padding(length=length, pad_token=pad_token, pad_id=self.tokenizer.token_to_id(pad_token))
        self.tokenizer.enable_truncation(max_length=length)
        kwargs = text_cfg.get("tokenizer_kwargs")
        self.canonicalize = kwargs is not None and kwargs.get("clean") == "canonicalize"
        self.session = session(os.path.join(folder, "textual", "model.onnx"))

    def tokens(self, text: str) -> list[int]:
        text = " ".join(text.split())
        if self.canonicalize:
            text = text.translate(PUNCTUATION).lower()
        return self.tokenizer.encode(text).ids

    def embed(self, text: str) -> tuple[list[int], list[float]]:
        ids = self.tokens(text)
        out = self.session.run(None, {"text": np.array([ids], dtype=np.int32)})[0][0]
        return ids, floats(out)


class Faces:
    def __init__(self, folder: str, min_score: float):
        from insightface.model_zoo import ArcFaceONNX, RetinaFace

        self.detector = RetinaFace(session=session(os.path.join(folder, "detection", "model.onnx")))
        self.detector.prepare(ctx_id=0, det_thresh=min_score, input_size=(640, 640))
        rec = os.path.join(folder, "recognition", "model.onnx")
        self.recognizer = ArcFaceONNX(rec, session=session(rec))

    def run(self, img: Image.Image) -> list[dict]:
        from insightface.utils.face_align import norm_crop

        bgr = np.asarray(img)[:, :, ::-1]
        bboxes, landmarks = self.detector.detect(bgr)
        if bboxes.shape[0] == 0:
            return []
        boxes = bboxes[:, :4].round()
        crops = [norm_crop(bgr, kps) for kps in landmarks]
        embeddings = self.recognizer.get_feat(crops)
        return [
            {
                "boundingBox": {"x1": float(b[0]), "y1": float(b[1]), "x2": float(b[2]), "y2": float(b[3])},
                "score": float(score),
                "embedding": floats(e),
            }
            for b, score, e in zip(boxes, bboxes[:, 4], embeddings)
        ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--clip", default="ViT-B-32__openai")
    ap.add_argument("--faces", default="buffalo_l")
    ap.add_argument("--min-score", default="0.7", help="one or several, comma-separated")
    ap.add_argument("--texts-json", help="a JSON array of strings to embed")
    ap.add_argument("images", nargs="*")
    args = ap.parse_args()

    clip = os.path.join(args.cache, "clip", args.clip)
    visual = Visual(clip)
    faces_dir = os.path.join(args.cache, "facial-recognition", args.faces)
    faces = {s: Faces(faces_dir, float(s)) for s in args.min_score.split(",")}
    out = {"images": [], "texts": []}
    for path in args.images:
        with open(path, "rb") as f:
            img = decode(f.read())
        out["images"].append(
            {
                "path": path,
                "imageWidth": img.width,
                "imageHeight": img.height,
                "clip": visual.embed(img),
                "faces": {s: f.run(img) for s, f in faces.items()},
            }
        )
    if args.texts_json:
        textual = Textual(clip)
        with open(args.texts_json, encoding="utf-8") as f:
            for text in json.load(f):
                ids, emb = textual.embed(text)
                out["texts"].append({"text": text, "tokens": ids, "clip": emb})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
