"""Shared helpers for the CLIP export tool and the Python reference embedder.

Both tools/export_clip.py and tools/reference/clip_embed.py build the open_clip
model through `build_model` here, so "the same model" means one code path:
with `--pretrained none` the RNG is seeded with `torch.manual_seed(seed)`
immediately before `open_clip.create_model(name, pretrained=None)`, which makes
the random weights a pure function of (model name, seed, open_clip version,
torch version); with a pretrained tag the weights are loaded by open_clip.

Also holds `VisualTower` and `TextTower`, the two halves of open_clip's CLIP
as standalone modules written for tracing (what the TorchScript and ONNX
files are exported from), `trace_faults` (the check that a trace runs in any
float dtype and never syncs the device on shapes), and the config-key logic.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

RANDOM_TAGS = ("none", "random", "")

# Bump when the exported artefacts change meaning (the skip check compares it).
# 2: the text tower takes [B, L] tokens for any L <= context_length.
# 3: traces without dtype casts (run in float32, float16 and bfloat16) and
#    without arithmetic on shapes (no device syncs); `torchscript_dtypes`.
# 4: with `tok` pooling the image tower's last block computes only the class
#    token's row (attention, out-projection, MLP): 6.0% fewer FLOPs, same math.
EXPORT_FORMAT_VERSION = 4

# The dtypes a format-3 TorchScript tower runs in, once its weights and
# float inputs are converted (the torch backend does both at load).
TORCHSCRIPT_DTYPES = ("float32", "float16", "bfloat16")

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


# The towers below are traced (torch.jit.trace) for TorchScript and exported to
# ONNX. They re-state open_clip's forward passes on open_clip's own modules and
# weights, with two differences a trace cares about (the float32 results are
# the same; the exporter checks every file against open_clip at 0.99999):
#
# * No dtype casts. open_clip's LayerNorm ends in `x.to(orig_type)` and the
#   ViT casts its class and positional embeddings `.to(x.dtype)`; a trace
#   freezes each of those into a constant cast to float32, and a module
#   converted to float16/bfloat16 then fails with "mixed dtype". Without the
#   casts one trace runs in whatever dtype its weights and inputs are.
# * No arithmetic on shapes. open_clip's attention (nn.MultiheadAttention)
#   computes `embed_dim // num_heads`, `bsz * num_heads` from traced sizes;
#   a trace records those as tensor ops on a tensor constant, which moves to
#   the GPU with the weights, so every `int(...)` of a result is a
#   device-to-host sync, several per layer. Here head counts and widths are
#   Python ints of the module, and reshapes use flatten/unflatten/-1.
#
# `trace_faults` checks a trace for both and the exporter refuses a file that
# has either.


def _norm(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A LayerNorm (or Identity) without open_clip's cast back to the input
    dtype, which a trace would freeze to float32."""
    if isinstance(m, nn.Identity):
        return x
    if not isinstance(m, nn.LayerNorm):
        raise ValueError(f"expected LayerNorm or Identity, got {type(m).__name__}")
    return F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)


def _check_plain_blocks(transformer: nn.Module) -> None:
    if not getattr(transformer, "batch_first", False):
        raise ValueError("expected open_clip's batch-first transformer")
    for r in transformer.resblocks:
        plain = isinstance(r.ls_1, nn.Identity) and isinstance(r.ls_2, nn.Identity) and not hasattr(r, "ln_1_kv")
        if not plain or not isinstance(r.attn, nn.MultiheadAttention) or not r.attn._qkv_same_embed_dim:
            raise ValueError("only plain pre-norm residual attention blocks are supported")
        if not all(isinstance(n, (nn.LayerNorm, nn.Identity)) for n in (r.ln_1, r.ln_2)):
            raise ValueError("only LayerNorm blocks are supported")


def _attention(
    attn: nn.MultiheadAttention, x: torch.Tensor, mask: Optional[torch.Tensor], queries: Optional[int] = None
) -> torch.Tensor:
    """nn.MultiheadAttention(x, x, x, attn_mask=mask) for batch-first x, on
    the module's own weights. Every size in it is a Python int of the module
    (heads, head_dim) or implied (flatten, -1), so the trace holds no shape
    arithmetic and the batch and sequence axes stay symbolic in ONNX.

    With `queries`, only the first `queries` rows of x ask (attention and the
    output projection run on those rows alone; keys and values still come
    from every row): nn.MultiheadAttention(x[:, :queries], x, x)."""
    heads, head_dim = attn.num_heads, attn.head_dim
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    if queries is not None:
        if mask is not None:
            raise ValueError("a query subset is only supported without an attention mask")
        # The packed projection stays one GEMM on the stored weight (an ONNX
        # initializer the int8 quantizer can take); the other rows' queries
        # cost 0.7% of the tower, and splitting the weight would leave a
        # Split on it in the ONNX file.
        q = q[:, :queries]
    q, k, v = (t.unflatten(-1, (heads, head_dim)).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).flatten(2)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


def _blocks(
    transformer: nn.Module, x: torch.Tensor, mask: Optional[torch.Tensor] = None, keep: Optional[int] = None
) -> torch.Tensor:
    """open_clip's Transformer.forward over ResidualAttentionBlocks.

    With `keep`, the result holds only the first `keep` rows, and the last
    block computes only those: every row of a block's output but the ones a
    caller reads is wasted work there (attention, LayerNorm and the MLP are
    per row once the keys and values exist). For ViT-B-32 with `tok`
    pooling, keep=1 skips 49 of 50 rows of the last block's attention, output
    projection and MLP, 6.0% of the image tower's FLOPs, for the same
    numbers (the exporter checks the files against open_clip at 0.99999)."""
    blocks = list(transformer.resblocks)
    for i, r in enumerate(blocks):
        h = _norm(r.ln_1, x)
        if keep is not None and i == len(blocks) - 1:
            x = x[:, :keep] + _attention(r.attn, h, mask, queries=keep)
        else:
            x = x + _attention(r.attn, h, mask)
        x = x + r.mlp(_norm(r.ln_2, x))
    return x


class VisualTower(nn.Module):
    """open_clip's VisionTransformer.forward (`model.encode_image` with
    normalize=False) as a standalone module on the same weights, written for
    tracing (see the notes above `_norm`). Attribute names are those of
    `model.visual`, so the state dicts have the same keys.

    Supports the plain ViT: learnable positional embedding, class token,
    `tok` or `avg` pooling, no attentional pooler; anything else raises."""

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        v = clip_model.visual
        from open_clip.transformer import VisionTransformer

        if not isinstance(v, VisionTransformer):
            raise ValueError(f"VisualTower supports open_clip's VisionTransformer, got {type(v).__name__}")
        if v.attn_pool is not None or v.pool_type not in ("tok", "avg") or v.output_tokens or v.proj is None:
            raise ValueError("VisualTower supports tok/avg pooling with a projection and no attentional pooler")
        if v.conv1.bias is not None:
            raise ValueError("VisualTower expects a bias-free patch embedding")
        _check_plain_blocks(v.transformer)
        self.conv1 = v.conv1
        self.class_embedding = v.class_embedding
        self.positional_embedding = v.positional_embedding
        self.patch_dropout = v.patch_dropout  # identity in eval; kept for the state dict's keys
        self.ln_pre = v.ln_pre
        self.transformer = v.transformer
        self.ln_post = v.ln_post
        self.proj = v.proj
        self.pool_type = v.pool_type
        self.final_ln_after_pool = bool(v.final_ln_after_pool)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.conv1(image).flatten(2).transpose(1, 2)  # [B, grid**2, W]
        # expand_as, not expand(B, ...): the batch size never becomes a number in the trace
        cls = self.class_embedding.view(1, 1, -1).expand_as(x[:, :1])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = _norm(self.ln_pre, x)
        # `tok` pooling reads the class token's row alone: the last block computes only it.
        x = _blocks(self.transformer, x, keep=1 if self.pool_type == "tok" else None)
        if not self.final_ln_after_pool:
            x = _norm(self.ln_post, x)
        pooled = x[:, 0] if self.pool_type == "tok" else x[:, 1:].mean(dim=1)
        if self.final_ln_after_pool:
            pooled = _norm(self.ln_post, pooled)
        return pooled @ self.proj


class TextTower(nn.Module):
    """open_clip CLIP.encode_text (normalize=False) as a standalone module,
    written for tracing (see the notes above `_norm`).

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
        _check_plain_blocks(self.transformer)
        self.width = int(self.positional_embedding.shape[-1])

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        seq_len = text.shape[1]  # a size, used as is (slicing): no arithmetic
        x = self.token_embedding(text)
        x = x + self.positional_embedding[:seq_len]
        mask = self.attn_mask[:seq_len, :seq_len]
        x = _blocks(self.transformer, x, mask)
        x = _norm(self.ln_final, x)
        # argmax pooling. Written with gather instead of advanced indexing by
        # arange(B) so the batch dimension stays symbolic in trace/ONNX.
        idx = text.argmax(dim=-1)  # [B]
        idx = idx.view(-1, 1, 1).expand(-1, 1, self.width)  # [B,1,W]
        x = torch.gather(x, 1, idx).squeeze(1)  # [B,W]
        return x @ self.text_projection


def trace_faults(module) -> List[str]:
    """What in a TorchScript module would break half precision or sync the
    device on every call; empty when nothing does. Reads the inlined graph:

    * a constant dtype argument (`torch.to(x, 6)`, `zeros(..., dtype=6)`):
      the trace then computes in that dtype whatever the weights are;
    * arithmetic on a size: each value of `prim::NumToTensor(aten::size(..))`
      may only be turned back into an int (`aten::Int`, a host-side op); any
      other use (floor_divide, mul by a tensor constant...) makes a tensor
      whose `int()` waits for the device.
    """
    graph = module.inlined_graph
    faults: List[str] = []
    sizes = set()

    def walk(block):
        for node in block.nodes():
            kind = node.kind()
            if kind == "prim::NumToTensor":
                sizes.add(node.output().debugName())
            try:
                schema = torch._C.parse_schema(node.schema()) if node.schema() != "(no schema)" else None
            except RuntimeError:
                schema = None
            inputs = list(node.inputs())
            if schema is not None:
                for arg, value in zip(schema.arguments, inputs):
                    src = value.node()
                    if arg.name == "dtype" and src.kind() == "prim::Constant" and src.output().type().kind() != "NoneType":
                        faults.append(f"constant dtype {src.output().toIValue()} in {kind}: {_where(node)}")
            if kind != "aten::Int":
                for value in inputs:
                    if value.debugName() in sizes:
                        faults.append(f"arithmetic on a size ({kind}): {_where(node)}")
            for b in node.blocks():
                walk(b)

    walk(graph)
    return faults


def _where(node) -> str:
    text = str(node).strip()
    return text if len(text) < 200 else text[:200] + "..."


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
