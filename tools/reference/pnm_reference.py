#!/usr/bin/env python3
"""PBM / PGM / PPM files of every kind Pillow reads (P1-P6; 8-bit, a maxval
below 255, 16-bit), each with what Pillow decodes it to: `<name>.rgb` holds
`Image.open(name).convert("RGB")` as raw bytes, manifest.json the sizes and
modes. tests/tests/pnm.rs decodes the same files and compares every byte.

    .venv/bin/python tools/reference/pnm_reference.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def files(rng):
    h, w = 7, 9
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    bits = rng.integers(0, 2, (h, w), dtype=np.uint8)
    low = rng.integers(0, 101, (h, w), dtype=np.uint8)
    gray16 = rng.integers(0, 1001, (h, w)).astype(">u2")
    rgb16 = rng.integers(0, 65536, (h, w, 3)).astype(">u2")
    plain = lambda a: " ".join(map(str, a.flatten())) + "\n"
    yield "p1.pbm", f"P1\n{w} {h}\n{plain(bits)}".encode()
    yield "p4.pbm", f"P4\n{w} {h}\n".encode() + np.packbits(bits, axis=1).tobytes()
    yield "p2.pgm", f"P2\n# a comment\n{w} {h}\n255\n{plain(gray)}".encode()
    yield "p5.pgm", f"P5\n{w} {h}\n255\n".encode() + gray.tobytes()
    yield "p5-maxval-100.pgm", f"P5\n{w} {h}\n100\n".encode() + low.tobytes()
    yield "p5-16bit.pgm", f"P5\n{w} {h}\n1000\n".encode() + gray16.tobytes()
    yield "p3.ppm", f"P3\n{w} {h}\n255\n{plain(rgb)}".encode()
    yield "p6.ppm", f"P6 {w} {h} 255\n".encode() + rgb.tobytes()
    yield "p6-16bit.ppm", f"P6\n{w} {h}\n65535\n".encode() + rgb16.tobytes()
    yield "p6.pnm", f"P6\n{w} {h}\n255\n".encode() + rgb[::-1].tobytes()


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, data in files(np.random.default_rng(7)):
        (out / name).write_bytes(data)
        with Image.open(out / name) as im:
            mode = im.mode
            pixels = np.asarray(im.convert("RGB"))
        (out / f"{name}.rgb").write_bytes(pixels.tobytes())
        manifest.append({"file": name, "width": pixels.shape[1], "height": pixels.shape[0], "pil_mode": mode})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
