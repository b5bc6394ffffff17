#!/usr/bin/env python3
"""Make an Immich machine-learning model cache offline (random weights).

Immich's ML service (immich-app/immich, machine-learning/immich_ml) keeps its
models in MACHINE_LEARNING_CACHE_FOLDER (`/cache` in its image) as

    <cache>/clip/<name>/config.json                   open_clip's model config
    <cache>/clip/<name>/visual/model.onnx             input `image` float32 [1,3,S,S]
    <cache>/clip/<name>/visual/preprocess_cfg.json    size, mean, std, interpolation, ...
    <cache>/clip/<name>/textual/model.onnx            input `text` int32 [1,77]
    <cache>/clip/<name>/textual/tokenizer.json        Hugging Face tokenizers file
    <cache>/clip/<name>/textual/tokenizer_config.json (pad_token, ...), special_tokens_map.json,
                                                      vocab.json, merges.txt
    <cache>/facial-recognition/<name>/detection/model.onnx    SCRFD det_10g
    <cache>/facial-recognition/<name>/recognition/model.onnx  ArcFace w600k_r50

This script writes that layout for `ViT-B-32__openai` and `buffalo_l` with the
real architectures and seeded random weights, so switchyard's Immich routes
can be tested where Hugging Face is not reachable:

* CLIP: open_clip ViT-B-32 built by tools/clip_common.build_model (seed 0 by
  default, the same weights as tools/export_clip.py's export), exported the
  way Immich's exporter does it (machine-learning/export, openclip.py):
  `encode_image(image, normalize=True)` and `encode_text(text,
  normalize=True)` as the graphs, input names `image` / `text`, output
  `embedding`, a fixed batch of 1 (Immich exports without dynamic axes),
  text as int32 [1, context_length], opset 17. config.json is
  `open_clip.get_model_config(model)` and preprocess_cfg.json
  `open_clip.get_model_preprocess_cfg(model)`, as Immich writes them.
* The tokenizer files are what transformers' `CLIPTokenizerFast` for
  openai/clip-vit-base-patch32 saves (Immich's exporter calls
  `AutoTokenizer.from_pretrained(...).save_pretrained`), rebuilt offline
  with the `tokenizers` library from open_clip's own BPE vocabulary: the
  same vocabulary and merges, and the pipeline transformers' CLIPConverter
  builds (NFC, whitespace runs to one space, lowercase; CLIP's split regex
  and byte-level pre-tokenizer; BPE with `</w>`; `<|startoftext|>` ...
  `<|endoftext|>` around the tokens).
* Faces: tools/make_face_models.py's stand-ins (buffalo_l's signatures; a
  constructed detector that answers skin colour, a random recognizer),
  renamed into Immich's `detection/` and `recognition/` folders.

Each model folder also gets a `meta.json` saying these are stand-ins (Immich
ignores the file; switchyard warns when it serves such a folder). Nothing is
done when `<out>/meta.json` describes the same build; --force rebuilds. The
cache is built in a temporary sibling folder and swapped in when complete.

Usage:
  .venv/bin/python tools/make_immich_models.py --out target/immich-cache
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# Bump when the files written change meaning (the up-to-date check compares it).
FORMAT_VERSION = 1


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: str) -> str:
    from clip_common import sha256_file as of_file  # lazy: clip_common imports torch

    return of_file(path)


def write_json(path: str, value) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def build_key(args) -> dict:
    import open_clip
    import tokenizers
    import torch

    scripts = {}
    for name in ("make_immich_models.py", "make_face_models.py", "clip_common.py"):
        scripts[name] = sha256_file(os.path.join(HERE, name))
    return {
        "format_version": FORMAT_VERSION,
        "clip_model": args.model,
        "clip_name": args.clip_name,
        "face_name": args.face_name,
        "seed": args.seed,
        "opset": args.opset,
        "open_clip_version": open_clip.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "scripts": scripts,
    }


def up_to_date(out: str, key: dict) -> bool:
    try:
        with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if meta.get("key") != key:
        return False
    for rel, sha in meta.get("sha256", {}).items():
        path = os.path.join(out, rel)
        if not os.path.isfile(path) or sha256_file(path) != sha:
            log(f"{rel} changed since it was made; rebuilding")
            return False
    return True


# ---------------------------------------------------------------- tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character table, as open_clip and transformers build it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """open_clip's vocabulary and merges (bpe_simple_vocab_16e6.txt.gz), in
    the order CLIPTokenizer's vocab.json has them."""
    import open_clip.tokenizer as oct

    path = oct.default_bpe()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab.extend("".join(m) for m in merges)
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    return {tok: i for i, tok in enumerate(vocab)}, merges


def write_tokenizer(folder: str, context_length: int) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    vocab, merges = clip_vocab()
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            unk_token=eos,
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        sep=(eos, vocab[eos]), cls=(bos, vocab[bos]), add_prefix_space=False, trim_offsets=False
    )
    tok.add_special_tokens([AddedToken(bos, normalized=True, special=True), AddedToken(eos, normalized=True, special=True)])
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    special = {"bos_token": bos, "eos_token": eos, "pad_token": eos, "unk_token": eos}
    write_json(os.path.join(folder, "special_tokens_map.json"), special)
    write_json(
        os.path.join(folder, "tokenizer_config.json"),
        {
            "add_prefix_space": False,
            **special,
            "clean_up_tokenization_spaces": False,
            "do_lower_case": True,
            "errors": "replace",
            "model_max_length": context_length,
            "tokenizer_class": "CLIPTokenizer",
        },
    )
    write_json(os.path.join(folder, "vocab.json"), vocab)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{a} {b}\n" for a, b in merges)


# --------------------------------------------------------------------- CLIP


def export_clip(args, folder: str) -> None:
    import open_clip
    import torch

    import clip_common as cc

    torch.backends.mha.set_fastpath_enabled(False)
    model, preprocess_cfg = cc.build_model(args.model, "none", args.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    model_cfg = open_clip.get_model_config(args.model)
    write_json(os.path.join(folder, "config.json"), model_cfg)
    write_json(os.path.join(folder, "visual", "preprocess_cfg.json"), preprocess_cfg)
    size = model_cfg["vision_cfg"]["image_size"]
    context_length = model_cfg["text_cfg"].get("context_length", 77)
    write_tokenizer(os.path.join(folder, "textual"), context_length)

    class Visual(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.encode_image(image, normalize=True)

    class Textual(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, text):
            return self.m.encode_text(text, normalize=True)

    towers = [
        ("visual", Visual(model).eval(), torch.randn(1, 3, size, size), "image"),
        ("textual", Textual(model).eval(), torch.ones(1, context_length, dtype=torch.int32), "text"),
    ]
    for tower, module, example, input_name in towers:
        log(f"exporting the {tower} tower (batch 1, as Immich's exporter does)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                os.path.join(folder, tower, "model.onnx"),
                dynamo=False,
                export_params=True,
                opset_version=args.opset,
                input_names=[input_name],
                output_names=["embedding"],
            )
    write_json(
        os.path.join(folder, "meta.json"),
        {
            "what": "switchyard offline stand-in for Immich's CLIP model folder: RANDOM weights",
            "model": args.model,
            "pretrained": "none",
            "seed": args.seed,
            "random_weights": True,
        },
    )


# -------------------------------------------------------------------- faces


def make_faces(args, folder: str, scratch: str) -> None:
    made = os.path.join(scratch, "buffalo_l")
    cmd = [sys.executable, os.path.join(HERE, "make_face_models.py"), "--out", made, "--seed", str(args.seed), "--force"]
    subprocess.run(cmd, check=True)
    for src, kind in (("det_10g.onnx", "detection"), ("w600k_r50.onnx", "recognition")):
        os.makedirs(os.path.join(folder, kind), exist_ok=True)
        shutil.move(os.path.join(made, src), os.path.join(folder, kind, "model.onnx"))
    shutil.move(os.path.join(made, "meta.json"), os.path.join(folder, "meta.json"))
    shutil.rmtree(made)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="target/immich-cache", help="the cache folder to write")
    ap.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    ap.add_argument("--clip-name", default="ViT-B-32__openai", help="the name Immich's server sends")
    ap.add_argument("--face-name", default="buffalo_l")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args()

    out = os.path.abspath(args.out)
    key = build_key(args)
    if not args.force and up_to_date(out, key):
        log(f"{out} is up to date")
        return 0
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    export_clip(args, os.path.join(tmp, "clip", args.clip_name))
    make_faces(args, os.path.join(tmp, "facial-recognition", args.face_name), tmp)
    shas = {}
    for base, _, files in os.walk(tmp):
        for name in files:
            path = os.path.join(base, name)
            shas[os.path.relpath(path, tmp)] = sha256_file(path)
    write_json(
        os.path.join(tmp, "meta.json"),
        {"what": "an Immich model cache with RANDOM weights (tools/make_immich_models.py)", "key": key, "sha256": shas},
    )
    old = out + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(out):
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
