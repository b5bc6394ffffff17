"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/).

Tiny images (a few hundred bytes each) made from scikit-image's sample photos
with Pillow, in every container and pixel layout the decoder handles; request
bodies for the three model routes, valid and broken; texts in many scripts;
OpenAI embeddings bodies; plugin packages for this platform, good and bad;
random bytes for the targets that build their input with `arbitrary`.
Run with the venv's python from fuzz/: ../.venv/bin/python make_seeds.py
"""

import base64
import hashlib
import io
import json
import os
import platform
import random
import tarfile

from PIL import Image
from skimage import data

HERE = os.path.dirname(os.path.abspath(__file__))


def images(d):
    def save(name, im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        open(os.path.join(d, name), "wb").write(b.getvalue())

    ast = Image.fromarray(data.astronaut()).resize((12, 9), Image.BICUBIC)
    cat = Image.fromarray(data.chelsea()).resize((9, 13), Image.BICUBIC)
    cam = Image.fromarray(data.camera()).resize((10, 10), Image.BICUBIC)
    cof = Image.fromarray(data.coffee()).resize((16, 5), Image.BICUBIC)
    save("astronaut.jpg", ast, "JPEG", quality=80)
    save("chelsea-progressive.jpg", cat, "JPEG", quality=70, progressive=True)
    save("camera-gray.jpg", cam, "JPEG", quality=75)
    save("coffee-cmyk.jpg", cof.convert("CMYK"), "JPEG", quality=75)
    save("chelsea-420.jpg", cat, "JPEG", quality=50, subsampling=2)
    save("astronaut.png", ast, "PNG")
    rgba = cat.convert("RGBA")
    rgba.putalpha(128)
    save("chelsea-rgba.png", rgba, "PNG")
    save("camera-gray.png", cam, "PNG")
    save("coffee-palette.png", cof.quantize(8), "PNG", transparency=0)
    save("camera-16bit.png", cam.convert("I;16"), "PNG")
    save("camera-1bit.png", cam.convert("1"), "PNG")
    frames = [ast.quantize(16), ast.transpose(Image.FLIP_LEFT_RIGHT).quantize(16)]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    open(os.path.join(d, "astronaut-animated.gif"), "wb").write(b.getvalue())
    save("camera.gif", cam, "GIF")
    save("chelsea-lossy.webp", cat, "WEBP", quality=60)
    save("coffee-lossless.webp", cof, "WEBP", lossless=True)
    save("chelsea-alpha.webp", rgba, "WEBP", quality=60)
    save("astronaut.bmp", ast, "BMP")
    save("camera-gray.bmp", cam, "BMP")
    save("coffee.tiff", cof, "TIFF")
    save("camera-gray-deflate.tiff", cam, "TIFF", compression="tiff_deflate")
    # Netpbm: binary P4, P5 (8 and 16 bit), P6 by Pillow; the plain (ASCII)
    # P1-P3 by hand, with comments; a PAM (P7), which is refused.
    save("camera-1bit.pbm", cam.convert("1"), "PPM")
    save("camera-gray.pgm", cam, "PPM")
    save("camera-16bit.pgm", cam.convert("I;16"), "PPM")
    save("astronaut.ppm", ast, "PPM")
    plain = {
        "plain-p1.pbm": "P1\n# a comment\n4 3\n0 1 0 1\n1 0 1 0\n0011\n",
        "plain-p2.pgm": "P2\n3 2 15\n0 7 15\n# mid\n15 7 0\n",
        "plain-p3.ppm": "P3 2 2 255 255 0 0 0 255 0 0 0 255 128 128 128\n",
    }
    for name, text in plain.items():
        open(os.path.join(d, name), "w").write(text)
    pam = b"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + bytes(range(6))
    open(os.path.join(d, "rgb.pam"), "wb").write(pam)
    # A wide and a tall strip, for the resize modes' extreme aspect ratios.
    save("strip-wide.png", Image.fromarray(data.astronaut()).resize((64, 1)), "PNG")
    save("strip-tall.gif", Image.fromarray(data.camera()).resize((1, 64)), "GIF")


def requests(d, images_dir):
    """Each file is `<path>\\n<content-type>\\n<body>` (see fuzz_targets/request_parse.rs)."""
    png = open(os.path.join(images_dir, "camera-gray.png"), "rb").read()
    gif = open(os.path.join(images_dir, "strip-tall.gif"), "rb").read()

    def w(name, path, ct, body):
        if isinstance(body, str):
            body = body.encode()
        open(os.path.join(d, name), "wb").write(path.encode() + b"\n" + ct.encode() + b"\n" + body)

    b64 = base64.b64encode(png).decode()
    w("image-raw-png", "/v1/embed/image", "image/png", png)
    w("image-octet", "/v1/faces", "application/octet-stream", gif)
    mp = (
        b'--XyZ\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        + png
        + b'\r\n--XyZ\r\nContent-Disposition: form-data; name="images"; filename="b.gif"\r\n\r\n'
        + gif
        + b"\r\n--XyZ--\r\n"
    )
    w("image-multipart", "/v1/embed/image", "multipart/form-data; boundary=XyZ", mp)
    w("image-multipart-truncated", "/v1/embed/image", "multipart/form-data; boundary=XyZ", mp[:150])
    w("image-multipart-noboundary", "/v1/embed/image", "multipart/form-data", mp)
    w("image-json-one", "/v1/embed/image", "application/json", json.dumps({"image": b64}))
    w(
        "image-json-dataurl",
        "/v1/embed/image",
        "application/json; charset=utf-8",
        json.dumps({"images": ["data:image/png;base64," + b64, b64]}),
    )
    w("image-json-badb64", "/v1/embed/image", "application/json", '{"images":["data:image/png,AAAA","!!notbase64=="]}')
    w("image-json-both", "/v1/embed/image", "application/json", '{"image":"AA==","images":["AA=="]}')
    w("image-json-many", "/v1/embed/image", "application/json", json.dumps({"images": ["AA=="] * 6}))
    w("image-text-plain", "/v1/embed/image", "text/plain", "hello")
    w("text-one", "/v1/embed/text", "application/json", '{"text":"a photo of a cat"}')
    w(
        "text-many",
        "/v1/embed/text",
        "application/json",
        json.dumps({"texts": ["a dog", "  ", "x" * 400, "caf\u00e9 \U0001f431"]}),
    )
    w("text-unknown-field", "/v1/embed/text", "application/json", '{"text":"a","extra":1}')
    w("text-syntax", "/v1/embed/text", "application/json", '{"text": "unterminated')
    w("text-wrong-type", "/v1/embed/text", "application/json", '{"texts": [1, null, {"a": []}]}')
    w("text-no-ct", "/v1/embed/text", "", '{"text":"a photo"}')
    w("openai-string", "/v1/embeddings", "application/json", '{"input":"a photo of a cat","model":"ViT-B-32"}')
    w(
        "openai-array",
        "/v1/embeddings",
        "application/json",
        '{"input":["a","b"],"model":"clip","encoding_format":"base64","dimensions":512}',
    )
    w("openai-tokens", "/v1/embeddings", "application/json", '{"input":[[1,2,3]],"encoding_format":"float","user":"u"}')
    w(
        "openai-bad",
        "/v1/embeddings",
        "application/json",
        '{"input":"x","model":"text-embedding-3-small","encoding_format":"int8","dimensions":256}',
    )


def openai(d):
    """Mode byte 0: the body as it is; 1: a request built with `arbitrary` (see src/openai_embeddings.rs)."""
    bodies = {
        "string": '{"input":"a photo of a cat","model":"ViT-B-32"}',
        "array-base64": '{"input":["a","b"],"model":"clip","encoding_format":"base64","dimensions":512}',
        "tokens": '{"input":[[1,2,3]],"encoding_format":"float","user":"u"}',
        "bad-fields": '{"input":"x","model":"text-embedding-3-small","encoding_format":"int8","dimensions":256}',
        "nulls": '{"input":["a dog"],"model":null,"encoding_format":null,"dimensions":null,"user":null}',
        "extra-field": '{"input":"a","model":"clip/ViT-B-32","extra":{"k":[1,2]}}',
        "blank": '{"input":["  ", ""]}',
        "not-json": '{"input": "unterminated',
    }
    for name, body in bodies.items():
        open(os.path.join(d, "raw-" + name), "wb").write(b"\0" + body.encode())
    rng = random.Random(18)
    for i in range(6):
        open(os.path.join(d, "built-%d" % i), "wb").write(b"\1" + rng.randbytes(rng.randint(8, 200)))


def package_entries(kind="cpu"):
    """A package's entries for this platform: (name, mode, bytes, tar type, manifest changes)."""
    plugin = b"\x7fELF stand-in plugin " + kind.encode()
    companion = b"\x7fELF stand-in torch companion"
    files = [("libbackend_%s.so" % kind, "plugin", plugin), ("libswitchyard_torch_%s.so" % kind, "companion", companion)]
    manifest = {
        "format": 1,
        "name": "backend-" + kind,
        "device_kind": kind,
        "version": "0.1.0",
        "abi": {"major": 1, "minor": 0},
        "platform": "%s-%s" % (platform.system().lower(), platform.machine()),
        "target": None,
        "glibc": "2.34",
        "runtimes": {"torch": "2.11.0", "torch_cuda": kind == "cuda", "onnxruntime_min": "1.22", "onnxruntime_tested": "1.31.1"},
        "files": [
            {"name": n, "role": r, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, r, b in files
        ],
    }
    return manifest, [(n, 0o755, b, tarfile.REGTYPE) for n, _, b in files]


def tar_bytes(manifest, entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, mode, data, kind in [("manifest.json", 0o644, json.dumps(manifest).encode(), tarfile.REGTYPE)] + entries:
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.type = mode, len(data), kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname, info.size, data = "/etc/passwd", 0, b""
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def packages(d):
    """Mode byte 0: a raw tar; 1: a .tar.gz; else a package built with `arbitrary` (see src/plugin_package.rs)."""
    import gzip

    def save(name, manifest, entries):
        raw = tar_bytes(manifest, entries)
        open(os.path.join(d, "tar-" + name), "wb").write(b"\0" + raw)
        open(os.path.join(d, "gz-" + name), "wb").write(b"\1" + gzip.compress(raw, 9, mtime=0))

    m, e = package_entries()
    save("good", m, e)
    m, e = package_entries("cuda")
    save("good-cuda", m, e)
    m, e = package_entries()
    save("traversal", m, [("../" + e[0][0],) + e[0][1:]] + e[1:])
    m, e = package_entries()
    save("symlink", m, e + [("libextra.so", 0o755, b"", tarfile.SYMTYPE)])
    m, e = package_entries()
    save("duplicate", m, e + [e[0]])
    m, e = package_entries()
    save("writable", m, [(e[0][0], 0o777) + e[0][2:]] + e[1:])
    m, e = package_entries()
    m["files"][0]["sha256"] = hashlib.sha256(b"other").hexdigest()
    save("bad-sha256", m, e)
    m, e = package_entries()
    m["abi"]["major"] = 2
    save("bad-abi", m, e)
    m, e = package_entries()
    m["files"].append(dict(m["files"][1]))
    save("listed-twice", m, e)
    m, e = package_entries()
    save("long-name", m, e + [("x" * 150 + ".so", 0o644, b"x", tarfile.REGTYPE)])
    rng = random.Random(18)
    for i in range(6):
        open(os.path.join(d, "built-%d" % i), "wb").write(bytes([2 + i]) + rng.randbytes(rng.randint(16, 300)))


IMMICH_BOUNDARY = "immichFuzzBoundary7f3a"  # src/immich_entries.rs, BOUNDARY


def immich_form(parts):
    """A multipart body as Node's FormData (Immich's server) writes it: (name, filename or None, bytes)."""
    out = b""
    for name, filename, content in parts:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"" % (IMMICH_BOUNDARY, name)).encode()
        if filename is not None:
            out += ('; filename="%s"\r\nContent-Type: application/octet-stream' % filename).encode()
        out += b"\r\n\r\n" + content + b"\r\n"
    return out + ("--%s--\r\n" % IMMICH_BOUNDARY).encode()


def immich(d, images_dir):
    """Mode byte 0: the `entries` text; 1: a whole form; 2: a request built with `arbitrary`
    (see src/immich_entries.rs). The first three of each are the requests Immich's server sends
    (machine-learning.repository.ts: encodeImage, encodeText, detectFaces)."""
    visual = {"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
    textual = {"clip": {"textual": {"modelName": "ViT-B-32__openai", "options": {"language": "en"}}}}
    faces = {
        "facial-recognition": {
            "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
            "recognition": {"modelName": "buffalo_l"},
        }
    }
    entries = {
        "server-visual": json.dumps(visual),
        "server-textual": json.dumps(textual),
        "server-faces": json.dumps(faces),
        "nllb-textual": '{"clip":{"textual":{"modelName":"nllb-clip-base-siglip__v1","options":{"language":"de-DE"}}}}',
        "language-null": '{"clip":{"textual":{"modelName":"m","options":{"language":null}}}}',
        "faces-default-score": '{"facial-recognition":{"detection":{"modelName":"b"},"recognition":{"modelName":"b"}}}',
        "both-tasks": '{"clip":{"visual":{"modelName":"v"}},"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":0.5}},"recognition":{"modelName":"b"}}}',
        "duplicate-keys": '{"clip":{"visual":{"modelName":"a"}},"clip":{"visual":{"modelName":"b"}}}',
        "extra-keys": '{"clip":{"visual":{"modelName":"v","options":{"any":1},"extra":[1]}}}',
        "not-json": '{"clip": {"visual": ',
        "array": '[{"clip":{}}]',
        "empty": "{}",
        "empty-task": '{"clip":{}}',
        "ocr": '{"ocr":{"detection":{"modelName":"PP-OCRv5_mobile"},"recognition":{"modelName":"PP-OCRv5_mobile"}}}',
        "unknown-type": '{"clip":{"pipeline":{"modelName":"v"}}}',
        "task-not-object": '{"clip":"ViT-B-32__openai"}',
        "no-model-name": '{"clip":{"visual":{"options":{}}}}',
        "model-name-number": '{"clip":{"visual":{"modelName":32}}}',
        "options-array": '{"clip":{"textual":{"modelName":"m","options":["en"]}}}',
        "language-number": '{"clip":{"textual":{"modelName":"m","options":{"language":1}}}}',
        "both-towers": '{"clip":{"visual":{"modelName":"v"},"textual":{"modelName":"t"}}}',
        "recognition-alone": '{"facial-recognition":{"recognition":{"modelName":"buffalo_l"}}}',
        "detection-alone": '{"facial-recognition":{"detection":{"modelName":"buffalo_l"}}}',
        "score-string": '{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":"0.7"}},"recognition":{"modelName":"b"}}}',
        "score-huge": '{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":1e300}},"recognition":{"modelName":"b"}}}',
        "score-overflow": '{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":1e999}},"recognition":{"modelName":"b"}}}',
        "score-null": '{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":null}},"recognition":{"modelName":"b"}}}',
    }
    for name, text in entries.items():
        open(os.path.join(d, "entries-" + name), "wb").write(b"\0" + text.encode())
    png = open(os.path.join(images_dir, "camera-gray.png"), "rb").read()
    e = lambda v: json.dumps(v).encode()
    forms = {
        "server-visual": [("entries", None, e(visual)), ("image", "blob", png)],
        "server-textual": [("entries", None, e(textual)), ("text", None, b"a photo of a cat")],
        "server-faces": [("entries", None, e(faces)), ("image", "blob", png)],
        "image-and-text": [("text", None, b"ignored"), ("entries", None, e(visual)), ("image", "blob", png)],
        "no-entries": [("image", "blob", png)],
        "no-input": [("entries", None, e(visual))],
        "text-for-visual": [("entries", None, e(visual)), ("text", None, b"a cat")],
        "image-for-textual": [("entries", None, e(textual)), ("image", "blob", png)],
        "text-for-faces": [("entries", None, e(faces)), ("text", None, b"a face")],
        "text-too-long": [("entries", None, e(textual)), ("text", None, b"a" * 301)],
        "unknown-field": [("entries", None, e(textual)), ("text", None, "caf\u00e9".encode()), ("x", None, b"1")],
        "text-not-utf8": [("entries", None, e(textual)), ("text", None, b"\xff\xfe cat")],
    }
    for name, parts in forms.items():
        open(os.path.join(d, "form-" + name), "wb").write(b"\1" + immich_form(parts))
    truncated = immich_form(forms["server-visual"])[:120]
    open(os.path.join(d, "form-truncated"), "wb").write(b"\1" + truncated)
    rng = random.Random(22)
    for i in range(8):
        open(os.path.join(d, "built-%d" % i), "wb").write(b"\2" + rng.randbytes(rng.randint(8, 300)))


def faces(d):
    """Random bytes: the target builds settings, an image and model outputs from them with `arbitrary`."""
    rng = random.Random(18)
    for i in range(12):
        open(os.path.join(d, "random-%02d" % i), "wb").write(rng.randbytes(rng.randint(8, 400)))


TEXTS = {
    "plain": "a photo of a cat",
    "caption": "A diagram of the solar system, with labels; 8 planets (and Pluto?)",
    "contractions": "it's what they've said: we'll see, I'd've known, you're right",
    "html": "fish &amp; chips &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;x&#39; &nbsp;&eacute;",
    "mojibake": "cafÃ© â€œquotedâ€\x9d naÃ¯ve",
    "unicode": "Ｆｕｌｌｗｉｄｔｈ ﬁ ligature, é (e + combining), ẞ İ ǅ ß σς",
    "emoji": "🐱‍👤 a cat 🇫🇷 flag 👍🏽 thumbs ❤️",
    "cjk": "一只猫的照片 猫の写真 고양이 사진",
    "scripts": "صورة قطة фото кошки φωτογραφία γάτας תמונה של חתול ภาพแมว",
    "specials": "<start_of_text>a<end_of_text> <|endoftext|> </w>",
    "numbers": "3.14159 1,000,000 2026-11-23 #42 $5.99 100%",
    "whitespace": "  tabs\tand\nnewlines\r\n\u00a0nbsp\u2003em\u200bzero-width  ",
    "long": " ".join("word%d" % i for i in range(120)),
    "repeat": "a" * 78 * 3,
    "punct": "!!!???...,,,;;;:::---___***((()))[[[]]]{{{}}}",
    "controls": "a\x00b\x01c\x7fd\u0085e\ufeff f",
}


def texts(d):
    for name, text in TEXTS.items():
        with open(os.path.join(d, name + ".txt"), "w", encoding="utf-8", newline="") as f:
            f.write(text)


def main():
    targets = (
        "decode_preprocess",
        "face_detect",
        "immich_entries",
        "openai_embeddings",
        "plugin_package",
        "request_parse",
        "tokenizer",
    )
    dirs = {t: os.path.join(HERE, "corpus", t) for t in targets}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    images(dirs["decode_preprocess"])
    requests(dirs["request_parse"], dirs["decode_preprocess"])
    texts(dirs["tokenizer"])
    openai(dirs["openai_embeddings"])
    immich(dirs["immich_entries"], dirs["decode_preprocess"])
    packages(dirs["plugin_package"])
    faces(dirs["face_detect"])


if __name__ == "__main__":
    main()
