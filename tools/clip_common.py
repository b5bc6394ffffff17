"""Shared helpers for the CLIP export tool and the Python reference embedder.

Both tools/export_clip.py and tools/reference/clip_embed.py build the open_clip
model through `build_model` here, so "the same model" means one code path:
with `--pretrained none` the RNG is seeded with `torch.manual_seed(seed)`
immediately before `open_clip.create_model(name, pretrained=None)`, which makes
the random weights a pure function of (model name, seed, open_clip version,
torch version); with a pretrained tag the weights are loaded by open_clip.

Also holds `TextTower`, the text half of open_clip's CLIP as a standalone
module (used for the textual TorchScript/ONNX export) and the config-key logic.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

RANDOM_TAGS = ("none", "random", "")

# Bump when the exported artefacts change meaning (the skip check compares it).
# 2: the text tower takes [B, L] tokens for any L <= context_length.
EXPORT_FORMAT_VERSION = 2

TOKENIZER_FILE = "bpe_simple_vocab_16e6.txt.gz"


def is_random(pretrained: Optional[str]) -> bool:
    return pretrained is None or str(pretrained).strip().lower() in RANDOM_TAGS


def normalize_tag(pretrained: Optional[str]) -> str:
    return "none" if is_random(pretrained) else str(pretrained)


def loud_random_warning(model_name: str, seed: int, what: str, file=None) -> None:
    bar = "!" * 78
    msg = (
        f"\n{bar}\n"
        f"!! WARNING: {what} uses RANDOM WEIGHTS ({model_name}, seed={seed}).\n"
        f"!! Embeddings are numerically reproducible but semantically MEANINGLESS.\n"
        f"!! For real weights (needs internet):\n"
        f"!!   python tools/export_clip.py --model {model_name} --pretrained laion2b_s34b_b79k\n"
        f"{bar}\n"
    )
    print(msg, file=file if file is not None else sys.stdout, flush=True)


def build_model(model_name: str, pretrained: Optional[str], seed: int):
    """Create the open_clip model in eval mode on CPU (float32).

    Returns (model, preprocess_cfg dict). The seeding is the contract shared by
    the exporter and the reference: do not add any RNG use before create_model.
    """
    import open_clip
    from open_clip.model import get_model_preprocess_cfg

    if is_random(pretrained):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    else:
        model = open_clip.create_model(model_name, pretrained=pretrained, device="cpu")
    model = model.float().eval()
    pp = dict(get_model_preprocess_cfg(model))
    return model, pp


def build_preprocess(pp: dict):
    """open_clip's eval-time image transform for a preprocess cfg, built the way
    open_clip.create_model_and_transforms builds its `preprocess_val`."""
    import dataclasses

    from open_clip.transform import PreprocessCfg, image_transform_v2

    fields = {f.name for f in dataclasses.fields(PreprocessCfg)}
    return image_transform_v2(PreprocessCfg(**{k: v for k, v in pp.items() if k in fields}), is_train=False)


class TextTower(nn.Module):
    """open_clip CLIP.encode_text (normalize=False) as a standalone module.

    Holds only the text tower's weights: token_embedding, positional_embedding,
    transformer, ln_final, text_projection and the causal attn_mask. Pooling is
    open_clip's 'argmax' pooling: features at the position of the largest token
    id in each row (the EOT token, 49407).

    The sequence axis is dynamic, as in open_clip's own TextTransformer: the
    input may be `[B, L]` for any L up to context_length, with the positional
    embedding and the causal mask cut to L. Because the mask is causal, the
    features at the EOT position depend only on the tokens before it, so
    cutting the zero padding after the longest row's EOT gives the same
    embedding as the full 77 tokens, in a fraction of the work.
    """

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        pool = getattr(clip_model, "text_pool_type", "argmax")
        if pool != "argmax":
            raise ValueError(f"TextTower supports argmax pooling only, model uses {pool!r}")
        if isinstance(clip_model.text_projection, nn.Linear):
            raise ValueError("TextTower expects a text_projection matrix, got nn.Linear")
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask.clone(), persistent=True)
        if not getattr(self.transformer, "batch_first", False):
            raise ValueError("TextTower expects open_clip's batch-first text transformer")
        for r in self.transformer.resblocks:
            plain = isinstance(r.ls_1, nn.Identity) and isinstance(r.ls_2, nn.Identity) and not hasattr(r, "ln_1_kv")
            if not plain or not r.attn._qkv_same_embed_dim:
                raise ValueError("TextTower supports plain pre-norm residual attention blocks only")

    @staticmethod
    def _attention(attn: nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """nn.MultiheadAttention(x, x, x, attn_mask=mask) for batch-first x, on
        the module's own weights, written with -1 reshapes so that the
        sequence length stays symbolic in the ONNX export (the MHA functional
        bakes the traced length into a Reshape)."""
        heads, width = attn.num_heads, x.shape[-1]
        q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(t.shape[0], -1, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(x.shape[0], -1, width)
        return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        seq_len = text.shape[1]
        x = self.token_embedding(text)
        x = x + self.positional_embedding[:seq_len]
        mask = self.attn_mask[:seq_len, :seq_len]
        for r in self.transformer.resblocks:  # open_clip's ResidualAttentionBlock.forward
            x = x + self._attention(r.attn, r.ln_1(x), mask)
            x = x + r.mlp(r.ln_2(x))
        x = self.ln_final(x)
        # argmax pooling. Written with gather instead of advanced indexing by
        # arange(B) so the batch dimension stays symbolic in trace/ONNX.
        idx = text.argmax(dim=-1)  # [B]
        idx = idx.view(-1, 1, 1).expand(-1, 1, x.shape[-1])  # [B,1,W]
        x = torch.gather(x, 1, idx).squeeze(1)  # [B,W]
        return x @ self.text_projection


def sha256_file(path: str, bufsize: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def versions() -> Tuple[str, str]:
    import open_clip

    return open_clip.__version__, torch.__version__


def default_tokenizer_path() -> str:
    import open_clip

    return os.path.join(os.path.dirname(open_clip.__file__), TOKENIZER_FILE)
