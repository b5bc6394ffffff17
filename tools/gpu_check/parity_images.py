#!/usr/bin/env python3
"""Writes the CLIP parity images (tools/reference/make_parity_images.py) from
the photos the GPU check bundle carries, where scikit-image's and
insightface's data folders may be absent (the bundle's photos/ folder holds
the files that script reads, copied from those packages).

Usage: parity_images.py OUT_DIR PHOTOS_DIR   (PHOTOS_DIR holds skimage/ and insightface/)
"""
import importlib.util
import os
import sys
from pathlib import Path

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    out, photos = sys.argv[1], Path(sys.argv[2])
    spec = importlib.util.spec_from_file_location(
        "make_parity_images", os.path.join(TOOLS, "reference", "make_parity_images.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.data_dirs = lambda: (photos / "skimage", photos / "insightface")
    sys.argv = [sys.argv[0], out]
    mod.main()


if __name__ == "__main__":
    main()
