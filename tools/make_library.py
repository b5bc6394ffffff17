#!/usr/bin/env python3
"""Generate a photo library for batch-embedding runs and their tests.

Writes OUT (default target/library) with --count files derived from the real
photos shipped in the venv (scikit-image and insightface samples): JPEG, PNG
and WebP at varied sizes from thumbnails up to camera size (4000x3000), in
nested folders (year/month/day, like a phone's camera roll), plus the things a
real library holds: corrupt files (truncated JPEGs, random bytes with an image
extension), files that are not images (text, JSON sidecars, a video stub) and
a symlink. Deterministic for a given --seed.

Prints one JSON line: counts by category, so tests know what to expect.
"""
import argparse
import glob
import io
import json
import os
import random

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources() -> list[Image.Image]:
    site = glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages"))[0]
    paths = sorted(
        glob.glob(os.path.join(site, "skimage/data/*.png"))
        + glob.glob(os.path.join(site, "skimage/data/*.jpg"))
        + glob.glob(os.path.join(site, "insightface/data/images/*.jpg"))
    )
    out = []
    for p in paths:
        try:
            im = Image.open(p)
            im.load()
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            if min(im.size) >= 64:
                out.append(im)
        except Exception:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "target/library"))
    ap.add_argument("--count", type=int, default=2000, help="good image files")
    ap.add_argument("--camera", type=int, default=12, help="of which camera-size (4000x3000)")
    ap.add_argument("--corrupt", type=int, default=25)
    ap.add_argument("--not-images", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    imgs = sources()
    os.makedirs(args.out, exist_ok=True)

    def folder(i: int) -> str:
        d = os.path.join(args.out, f"{2019 + i % 5}", f"{1 + i % 12:02d}", f"{1 + (i // 7) % 28:02d}")
        os.makedirs(d, exist_ok=True)
        return d

    good = []
    for i in range(args.count):
        src = imgs[i % len(imgs)]
        if i < args.camera:
            size = (4000, 3000) if i % 2 == 0 else (3000, 4000)
        else:
            long_side = rng.choice([96, 160, 256, 320, 480, 640, 800, 1024])
            scale = long_side / max(src.size)
            size = (max(8, round(src.width * scale)), max(8, round(src.height * scale)))
        im = src.resize(size, Image.BILINEAR)
        fmt = "jpg" if i % 10 < 7 else ("png" if i % 10 < 9 else "webp")
        path = os.path.join(folder(i), f"IMG_{i:05d}.{fmt}")
        if fmt == "jpg":
            im.convert("RGB").save(path, quality=rng.choice([70, 85, 95]))
        else:
            im.save(path)
        good.append(path)

    corrupt = []
    for i in range(args.corrupt):
        path = os.path.join(folder(i + 3), f"BROKEN_{i:03d}.jpg")
        if i % 2 == 0:
            buf = io.BytesIO()
            imgs[i % len(imgs)].convert("RGB").save(buf, "JPEG")
            data = buf.getvalue()[: rng.randint(20, 400)]
        else:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2048)))
        with open(path, "wb") as f:
            f.write(data)
        corrupt.append(path)

    ignored = 0
    for i in range(args.not_images):
        d = folder(i + 5)
        name, data = [(f"notes_{i}.txt", b"not a photo\n"), (f"IMG_{i:05d}.json", b"{}"), (f"VID_{i:05d}.mp4", b"\x00\x00\x00\x18ftypmp42")][i % 3]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        ignored += 1
    # A text file with an image extension is picked up and must fail cleanly.
    fake = os.path.join(folder(1), "README.png")
    with open(fake, "w") as f:
        f.write("this is text, not a PNG\n")
    corrupt.append(fake)
    # A symlinked folder back to the root must not make the walk loop.
    loop = os.path.join(args.out, "2019", "loop")
    if not os.path.islink(loop):
        os.symlink(args.out, loop)

    print(json.dumps({"out": args.out, "good": len(good), "corrupt": len(corrupt), "ignored": ignored,
                      "camera": min(args.camera, args.count)}))


if __name__ == "__main__":
    main()
