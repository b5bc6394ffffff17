"""The faces reference: insightface's own code on the same ONNX models.

Runs `insightface.model_zoo.scrfd.SCRFD` (prepared as FaceAnalysis prepares
it: CPU, det_size 640x640, det_thresh 0.5, NMS 0.4), `face_align.norm_crop`
and `insightface.model_zoo.arcface_onnx.ArcFaceONNX.get_feat`, and dumps what
they produce, for tests/tests/faces_parity.rs to compare with switchyard.

Pixels: insightface expects BGR from cv2.imread. switchyard decodes as PIL
does, so this script reads with PIL (`Image.open(p).convert("RGB")`) and
reverses the channels, so both sides see identical pixels. For each file the
output also says whether cv2.imread would have given the same pixels
(`cv2_agrees`): they differ for EXIF-rotated JPEGs (cv2 applies the
orientation, PIL does not) and may differ in libjpeg-turbo versions.

Usage:
  faces_reference.py images OUT_DIR             write the test images, print their paths
  faces_reference.py run --model-dir D --out F --crops-dir C IMAGES...   write F (JSON) and C/<i>.bgr
  faces_reference.py bench --model-dir D --threads N IMAGES...  time insightface
  faces_reference.py service --model-dir D --threads N IMAGES... time it end to end
      as the Python service runs it: per file, PIL open + convert("RGB") to
      BGR, then FaceAnalysis(name="buffalo_l", detection + recognition).get,
      which calls the recognizer once per face. ONNX Runtime sessions get
      N intra-op threads (FaceAnalysis takes no session options, so
      insightface's session class is patched to pass them), cv2 N threads.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

warnings.filterwarnings("ignore")


def data_dirs():
    import insightface
    import skimage

    return os.path.join(os.path.dirname(insightface.__file__), "data", "images"), os.path.join(
        os.path.dirname(skimage.__file__), "data"
    )


def make_images(out: str) -> list[str]:
    """Real photos, plus the corner cases derived from them."""
    os.makedirs(out, exist_ok=True)
    ins, sk = data_dirs()
    paths = []

    def keep(name: str, img: Image.Image | None = None, src: str | None = None, **save):
        path = os.path.join(out, name)
        if src is not None:
            with open(src, "rb") as f, open(path, "wb") as g:
                g.write(f.read())
        else:
            img.save(path, **save)
        paths.append(path)

    for name in ["t1.jpg", "Tom_Hanks_54745.png", "mask_white.jpg", "mask_green.jpg", "mask_black.jpg"]:
        keep(name, src=os.path.join(ins, name))
    for name in ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg"]:
        keep(name, src=os.path.join(sk, name))
    astro = Image.open(os.path.join(sk, "astronaut.png")).convert("RGB")
    t1 = Image.open(os.path.join(ins, "t1.jpg")).convert("RGB")
    keep("astronaut_face.jpg", astro.crop((150, 20, 330, 230)), quality=92)
    canvas = Image.new("RGB", (640, 480), (70, 80, 95))
    canvas.paste(astro.crop((170, 40, 310, 200)).resize((70, 80), Image.Resampling.BICUBIC), (300, 180))
    keep("one_face.png", canvas)
    keep("astronaut_rot90.png", astro.transpose(Image.Transpose.ROTATE_90))
    keep("t1_rot270.jpg", t1.transpose(Image.Transpose.ROTATE_270), quality=90)
    keep("t1_gray.jpg", t1.convert("L"), quality=90)
    keep("tiny_8x8.png", astro.resize((8, 8), Image.Resampling.BILINEAR))
    keep("huge_4000x3000.jpg", t1.resize((4000, 3000), Image.Resampling.BICUBIC), quality=85)
    keep("noface_flat.png", Image.new("RGB", (640, 480), (90, 140, 200)))
    keep("noface_grass.png", src=os.path.join(sk, "grass.png"))
    return paths


def load_bgr(path: str) -> tuple[np.ndarray, bool]:
    import cv2

    rgb = np.asarray(Image.open(path).convert("RGB"))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    theirs = cv2.imread(path, cv2.IMREAD_COLOR)
    return bgr, theirs is not None and theirs.shape == bgr.shape and bool(np.array_equal(theirs, bgr))


def load_models(model_dir: str, threads: int = 0):
    import onnxruntime
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    opts = onnxruntime.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    cpu = ["CPUExecutionProvider"]
    det_path = os.path.join(model_dir, "det_10g.onnx")
    rec_path = os.path.join(model_dir, "w600k_r50.onnx")
    det = SCRFD(det_path, session=onnxruntime.InferenceSession(det_path, opts, providers=cpu))
    det.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    rec = ArcFaceONNX(rec_path, session=onnxruntime.InferenceSession(rec_path, opts, providers=cpu))
    rec.prepare(-1)
    return det, rec


def analyse(det, rec, bgr: np.ndarray, max_num: int = 0):
    from insightface.utils import face_align

    boxes, kpss = det.detect(bgr, max_num=max_num)
    crops = [face_align.norm_crop(bgr, landmark=k, image_size=112) for k in kpss]
    feats = rec.get_feat(crops) if crops else np.zeros((0, 512), np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return boxes, kpss, crops, feats / np.maximum(norms, 1e-12)


def run(args) -> None:
    det, rec = load_models(args.model_dir, args.threads)
    out = []
    for path in args.images:
        bgr, agrees = load_bgr(path)
        boxes, kpss, crops, embs = analyse(det, rec, bgr, args.max_num)
        crops_file = os.path.join(args.crops_dir, f"{len(out)}.bgr")
        with open(crops_file, "wb") as f:
            for crop in crops:  # 112x112x3 BGR, as insightface holds it
                f.write(np.ascontiguousarray(crop).tobytes())
        out.append(
            {
                "path": path,
                "cv2_agrees": agrees,
                "crops_file": crops_file,
                "faces": [
                    {
                        "bbox": [float(v) for v in boxes[i, :4]],
                        "score": float(boxes[i, 4]),
                        "landmarks": [[float(x), float(y)] for x, y in kpss[i]],
                        "embedding": [float(v) for v in embs[i]],
                    }
                    for i in range(len(boxes))
                ],
            }
        )
    with open(args.out, "w") as f:
        json.dump({"images": out}, f)


def bench(args) -> None:
    import cv2

    cv2.setNumThreads(args.threads)
    det, rec = load_models(args.model_dir, args.threads)
    images = [load_bgr(p)[0] for p in args.images]
    analyse(det, rec, images[0])  # warm-up
    faces = 0
    start = time.perf_counter()
    for _ in range(args.rounds):
        for bgr in images:
            faces += len(analyse(det, rec, bgr)[0])
    elapsed = time.perf_counter() - start
    n = len(images) * args.rounds
    print(json.dumps({"images": n, "faces": faces, "seconds": elapsed, "images_per_s": n / elapsed}))


def service(args) -> None:
    import tempfile

    import cv2
    import onnxruntime

    if args.import_torch:
        # The service is one process with both stacks: CLIP's torch + open_clip are loaded too.
        import open_clip  # noqa: F401
        import torch  # noqa: F401
    from insightface.app import FaceAnalysis
    from insightface.model_zoo import model_zoo

    cv2.setNumThreads(args.threads)
    real_init = model_zoo.PickableInferenceSession.__init__

    def init(self, model_path, **kw):
        kw["sess_options"] = onnxruntime.SessionOptions()
        kw["sess_options"].intra_op_num_threads = args.threads
        real_init(self, model_path, **kw)

    model_zoo.PickableInferenceSession.__init__ = init

    # FaceAnalysis reads ROOT/models/NAME/*.onnx; point it at the model folder.
    root = tempfile.mkdtemp(prefix="faces-service-")
    os.makedirs(os.path.join(root, "models"))
    os.symlink(os.path.abspath(args.model_dir), os.path.join(root, "models", "buffalo_l"))
    app = FaceAnalysis(name="buffalo_l", root=root, allowed_modules=["detection", "recognition"],
                       providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))

    def one(path: str) -> int:
        bgr = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])
        faces = app.get(bgr)
        _ = [f.normed_embedding for f in faces]
        return len(faces)

    one(args.images[0])  # warm-up
    start = time.perf_counter()
    faces = sum(one(p) for p in args.images)
    elapsed = time.perf_counter() - start
    n = len(args.images)
    print(json.dumps({"images": n, "faces": faces, "seconds": elapsed, "images_per_s": n / elapsed}))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("images")
    p.add_argument("out")
    p = sub.add_parser("run")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--crops-dir", required=True, help="aligned crops go here, one raw BGR file per image")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-num", type=int, default=0)
    p.add_argument("images", nargs="+")
    p = sub.add_parser("bench")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("images", nargs="+")
    p = sub.add_parser("service")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--import-torch", action="store_true", help="also import torch and open_clip, as the service does")
    p.add_argument("images", nargs="+")
    args = ap.parse_args()
    if args.cmd == "images":
        for p in make_images(args.out):
            print(p)
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "service":
        service(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
