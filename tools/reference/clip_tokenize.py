#!/usr/bin/env python3
"""Reference CLIP tokenization: open_clip's own tokenizer, for parity tests.

Reads a JSON list of strings (from the file named on the command line, or from
stdin) and prints a JSON list of token id rows, one per string, exactly as
`open_clip.get_tokenizer(MODEL)(texts, context_length)` returns them.

    .venv/bin/python tools/reference/clip_tokenize.py cases.json
    echo '["a photo of a cat"]' | .venv/bin/python tools/reference/clip_tokenize.py
    .venv/bin/python tools/reference/clip_tokenize.py --vocab-path   # where the BPE file is
"""

import os
import sys

# This file's name shadows the standard library's `tokenize` (which torch imports):
# keep its folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="JSON file with a list of strings (default: stdin)")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model name whose tokenizer to use")
    parser.add_argument("--context-length", type=int, default=77)
    parser.add_argument("--vocab-path", action="store_true", help="print the path of open_clip's BPE vocabulary and exit")
    args = parser.parse_args()

    from open_clip import tokenizer as oc_tokenizer

    if args.vocab_path:
        print(oc_tokenizer.default_bpe())
        return 0

    import open_clip

    if args.input:
        with open(args.input, "rb") as f:
            texts = json.loads(f.read().decode("utf-8"))
    else:
        texts = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        print("error: the input must be a JSON list of strings", file=sys.stderr)
        return 2

    tokenizer = open_clip.get_tokenizer(args.model)
    rows = tokenizer(texts, context_length=args.context_length).tolist() if texts else []
    sys.stdout.write(json.dumps(rows, separators=(",", ":")))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
