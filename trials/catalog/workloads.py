"""The workload catalog: parameters, named sizes and the accounting a sweep file needs.

The implementations are :data:`trials.workloads.WORKLOADS` (their config dataclasses' fields are
the parameters) and :mod:`trials.workloads.gpt`; ``tests/trials_tests/test_catalog.py`` checks
the cards, :data:`GPT_SIZES`, :func:`gpt_param_count` and :func:`gpt_activation_bytes` against
them (the last against the bytes autograd really saves).

A workload's parameters come in three places in a sweep file: ``workload.params`` (shared by
every size: :attr:`WorkloadCard.params`), each entry of ``workload.sizes``
(:attr:`WorkloadCard.size_params`), and keys elsewhere (``eval.batches`` sets ``eval_batches``:
a :class:`~trials.catalog._params.Param` with ``set_by``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trials.catalog._params import NON_NEGATIVE, POSITIVE, UNIT_HALF_OPEN, UNIT_OPEN, Bounds, Param

__all__ = [
    "CHAR_VOCAB",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "DEFAULT_SHARD_VOCAB",
    "GPT_SIZES",
    "LLAMA_SIZES",
    "SHIPPED_CORPUS_TOKENS",
    "WORKLOADS",
    "WorkloadCard",
    "gpt_activation_bytes",
    "gpt_param_count",
    "linreg_activation_bytes",
    "llama_activation_bytes",
    "llama_flops_per_token",
    "llama_param_count",
    "llama_shape",
    "llama_shape_problem",
]

CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal D ≈ 20 N
CHAR_VOCAB = 84  # distinct characters of the shipped Shakespeare corpus
SHIPPED_CORPUS_TOKENS = 5_057_321  # its characters (train + held-out)
DEFAULT_SHARD_VOCAB = 50304  # token shards: GPT-2's 50257 padded to a multiple of 128

# Named char-GPT sizes (trials.workloads.gpt.GPT_SIZES). Non-embedding N in the comments.
GPT_SIZES: dict[str, dict[str, int]] = {
    "nano": {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64},  # N = 0.10M
    "micro": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128},  # N = 0.79M
    "small": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256},  # N = 10.6M
    "gpt2-small": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024},  # N = 85.1M
}

# Named llama sizes (trials.workloads.llama). Non-embedding N in the comments; "124m" is GPT-2
# small's count with tied embeddings at vocabulary 50304 (123.6M in all).
LLAMA_SIZES: dict[str, dict[str, int]] = {
    "nano": {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4, "ffn_hidden": 192, "context": 64},  # 0.11M
    "micro": {"d_model": 128, "n_layers": 4, "n_heads": 4, "n_kv_heads": 4, "ffn_hidden": 384, "context": 128},  # 0.85M
    "mini": {"d_model": 256, "n_layers": 6, "n_heads": 4, "n_kv_heads": 4, "ffn_hidden": 768, "context": 256},  # 5.1M
    "small": {"d_model": 512, "n_layers": 8, "n_heads": 8, "n_kv_heads": 8, "ffn_hidden": 1536, "context": 512},  # 27.3M
    "124m": {"d_model": 768, "n_layers": 12, "n_heads": 12, "n_kv_heads": 12, "ffn_hidden": 2048, "context": 1024},  # 85.0M
}
LLAMA_SHAPE_KEYS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "context")


@dataclass(frozen=True, kw_only=True)
class WorkloadCard:
    """What a sweep file may say about one workload.

    Attributes:
        name: the registry name.
        summary: one line for the documentation.
        params: ``workload.params``, shared by every size.
        size_params: what one entry of ``workload.sizes`` sets.
        default_size: the size when ``workload.sizes`` is not given.
        named_sizes: sizes a sweep file may give by name.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    size_params: tuple[Param, ...]
    default_size: str | dict[str, int]
    named_sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    def param(self, name: str) -> Param | None:
        return next((p for p in (*self.params, *self.size_params) if p.name == name), None)


def _int(name: str, default: int | None, help: str = "", **kw: object) -> Param:  # noqa: A002
    return Param(name=name, kind="int", default=default, bounds=Bounds(1), nullable=default is None,
                 help=help, **kw)  # type: ignore[arg-type]


_CHAR_GPT = WorkloadCard(
    name="char_gpt", summary="a nanoGPT-style model on characters (or `.bin` token shards)",
    params=(
        Param(name="corpus", kind="path", default=None, nullable=True,
              help="unset: the shipped Shakespeare"),
        _int("vocab_size", None, "unset: the text's characters, 50304 for shards"),
        _int("eval_batches", 8, "held-out batches per evaluation", set_by="eval.batches"),
        _int("eval_batch_size", 32, "windows per held-out batch"),
        Param(name="val_fraction", kind="float", default=0.1, bounds=UNIT_OPEN, help="held-out tail"),
        Param(name="dtype", kind="choice", default="float32", choices=("float32", "bfloat16"),
              help="bfloat16: CUDA autocast"),
        Param(name="compile", kind="bool", default=False, help="torch.compile on CUDA"),
        Param(name="dropout", kind="float", default=0.0, bounds=UNIT_HALF_OPEN),
        Param(name="bias", kind="bool", default=True, help="biases in Linear and LayerNorm"),
    ),
    size_params=(
        Param(name="size", kind="choice", default="micro", choices=tuple(GPT_SIZES), help="the named base"),
        _int("n_layer", None), _int("n_head", None), _int("n_embd", None), _int("block_size", None),
    ),
    default_size="micro", named_sizes=GPT_SIZES,
)
_LINREG = WorkloadCard(
    name="linreg", summary="power-law linear regression (docs/equations.md §10), exact excess risk as eval loss",
    params=(
        Param(name="capacity", kind="float", default=2.0, bounds=Bounds(1, low_open=True), help="a: lambda_i = i^-a"),
        Param(name="source", kind="float", default=4.0, bounds=POSITIVE, help="b: lambda_i w*_i^2 = i^-b"),
        Param(name="noise", kind="float", default=0.5, bounds=NON_NEGATIVE, help="label-noise sigma"),
    ),
    size_params=(Param(name="dim", kind="int", default=1000, bounds=Bounds(1), help="features = parameters"),),
    default_size={"dim": 1000},
)
_LLAMA = WorkloadCard(
    name="llama", summary="a Llama-style decoder (RoPE, RMSNorm, SwiGLU) on token shards or characters",
    params=(
        Param(name="corpus", kind="path", default=None, nullable=True,
              help="prepared shards (`lrsweep data prepare`); unset: the shipped Shakespeare, characters"),
        _int("vocab_size", None, "unset: the manifest's, the text's characters, or 50304 for shards"),
        Param(name="tie_embeddings", kind="bool", default=False, help="output head = token embedding"),
        Param(name="rope_theta", kind="float", default=10000.0, bounds=POSITIVE, help="RoPE base"),
        Param(name="norm_eps", kind="float", default=1e-5, bounds=POSITIVE, help="RMSNorm epsilon"),
        _int("eval_batches", 8, "held-out batches per evaluation", set_by="eval.batches"),
        _int("eval_batch_size", 32, "windows per held-out batch"),
        Param(name="val_fraction", kind="float", default=0.1, bounds=UNIT_OPEN,
              help="held-out tail when the corpus has no val shard"),
        Param(name="dtype", kind="choice", default="float32", choices=("float32", "bfloat16"),
              help="bfloat16: CUDA autocast"),
        Param(name="compile", kind="bool", default=False, help="torch.compile on CUDA"),
    ),
    size_params=(
        Param(name="size", kind="choice", default="nano", choices=tuple(LLAMA_SIZES), help="the named base"),
        _int("d_model", None), _int("n_layers", None), _int("n_heads", None),
        _int("n_kv_heads", None, "unset: n_heads (no grouped-query attention)"),
        _int("ffn_hidden", None, "SwiGLU width"), _int("context", None, "tokens per sequence"),
    ),
    default_size="nano", named_sizes=LLAMA_SIZES,
)
WORKLOADS: dict[str, WorkloadCard] = {card.name: card for card in (_CHAR_GPT, _LINREG, _LLAMA)}


def llama_shape(size: str, given: dict[str, int | None]) -> dict[str, int]:
    """A named size of :data:`LLAMA_SIZES` with the given dimensions overriding it; overriding
    ``n_heads`` alone sets ``n_kv_heads`` to it too (no grouped-query attention)."""
    shape = dict(LLAMA_SIZES[size])
    shape.update({k: v for k, v in given.items() if v is not None})
    if given.get("n_kv_heads") is None and given.get("n_heads") is not None:
        shape["n_kv_heads"] = shape["n_heads"]
    return shape


def llama_shape_problem(shape: dict[str, int]) -> tuple[str, int, str] | None:
    """``(field, value, expectation)`` when the dimensions make no model, else ``None``."""
    d, h, kv = shape["d_model"], shape["n_heads"], shape["n_kv_heads"]
    if d % h:
        return "d_model", d, f"a multiple of n_heads ({h})"
    if (d // h) % 2:
        return "d_model", d, f"such that d_model / n_heads is even (RoPE rotates pairs; head size {d // h})"
    if h % kv:
        return "n_kv_heads", kv, f"a divisor of n_heads ({h})"
    return None


def llama_param_count(*, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, ffn_hidden: int,
                      vocab_size: int = DEFAULT_SHARD_VOCAB, tie_embeddings: bool = False,
                      non_embedding: bool = True, **_: int) -> int:
    """Parameters of :mod:`trials.workloads.llama_model`, counted without building it.

    Per block, with ``d = d_model`` and ``h = d / n_heads``: the two RMSNorm gains ``2d``,
    ``q`` and ``o`` ``2 d^2``, ``k`` and ``v`` ``2 d n_kv_heads h``, SwiGLU ``3 d ffn_hidden``;
    the final norm adds ``d``. ``non_embedding=False`` adds the token embedding ``vocab d`` and,
    untied, the output head ``d vocab``.
    """
    d, h = d_model, d_model // n_heads
    n = n_layers * (2 * d + 2 * d * d + 2 * d * n_kv_heads * h + 3 * d * ffn_hidden) + d
    if not non_embedding:
        n += vocab_size * d * (1 if tie_embeddings else 2)
    return n


def llama_flops_per_token(*, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, ffn_hidden: int,
                          context: int, vocab_size: int = DEFAULT_SHARD_VOCAB, **_: int) -> int:
    """Training FLOPs per token (forward + backward) of one full-context sequence:
    ``6 (N + d vocab) + 12 n_layers context d``.

    ``N`` is the non-embedding count (:func:`llama_param_count`; its norm gains are a rounding
    error), ``d vocab`` the output head's matmul (an embedding lookup costs none): every weight
    multiplies once forward (2 FLOPs) and twice backward (4). The attention term counts
    ``q k^T`` and ``scores v`` at ``2 context d`` FLOPs each per token and layer, times 3 for the
    backward, over the whole context (the PaLM / nanoGPT convention: causal masking's halving
    is not subtracted, as the fused kernels of ``scaled_dot_product_attention`` on CPU do not
    skip it either).
    """
    n = llama_param_count(d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
                          ffn_hidden=ffn_hidden)
    return 6 * (n + d_model * vocab_size) + 12 * n_layers * context * d_model


def llama_activation_bytes(*, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, ffn_hidden: int,
                           context: int, vocab_size: int, batch_size: int, **_: int) -> int:
    """Bytes autograd keeps for one float32 training step.

    Per sequence of ``T = context`` tokens and layer: the residual input and two norm outputs
    ``3 T d``, ``q, k, v`` before and after RoPE ``2 T (d + 2 d_kv)``, attention output and its
    log-sum-exp ``T d + n_heads T``, SwiGLU's gate, up, their silu and product ``4 T ffn``;
    outside the blocks the final norm ``2 T d`` and the logits' log-softmax ``T vocab``.
    Within 8% of what autograd saves (``tests/trials_tests/test_llama.py``).
    """
    T, d, f = context, d_model, ffn_hidden
    d_kv = n_kv_heads * (d_model // n_heads)
    per_layer = 3 * T * d + 2 * T * (d + 2 * d_kv) + T * d + n_heads * T + 4 * T * f
    return 4 * batch_size * (n_layers * per_layer + 2 * T * d + T * vocab_size)


def gpt_param_count(n_layer: int, n_embd: int, block_size: int, vocab_size: int = CHAR_VOCAB, *,
                    non_embedding: bool = True, bias: bool = True) -> int:
    """Parameters of the nanoGPT-style char model (:mod:`trials.workloads.gpt`: pre-LayerNorm
    blocks, learned positions, untied output head without bias), counted without building it.

    ``non_embedding=True`` (the ``N`` of Kaplan et al. 2020 and of ``6 N D``) counts the
    transformer blocks and the final LayerNorm, i.e. everything except the token embedding
    (``vocab x d``), the position embedding (``block x d``) and the output head (``d x vocab``).
    Per block with ``d = n_embd`` and biases: ln_1 ``2d``, qkv ``3d^2 + 3d``, attention out
    ``d^2 + d``, ln_2 ``2d``, MLP ``4d^2 + 4d`` and ``4d^2 + d``: ``12 d^2 + 13 d``; without
    biases (``bias=False``) ``12 d^2 + 2d``. The final LayerNorm adds ``2d`` (``d``).
    """
    d = n_embd
    per_block = 12 * d * d + (13 * d if bias else 2 * d)
    n = n_layer * per_block + (2 * d if bias else d)
    if not non_embedding:
        n += vocab_size * d + block_size * d + d * vocab_size
    return n


def gpt_activation_bytes(*, n_layer: int, n_head: int, n_embd: int, block_size: int, vocab_size: int,
                         batch_size: int, dropout: float = 0.0) -> int:
    """Bytes autograd keeps for the backward pass of one float32 training step.

    Per sequence of ``T = block_size`` tokens and width ``d``, counted from the model's saved
    tensors: each block keeps ``16 T d`` floats (LayerNorm inputs and outputs ``4 T d``, qkv
    ``3 T d``, attention output ``T d``, MLP ``4 T d`` before and after the GELU, input ``T d``)
    and the attention's log-sum-exp ``n_head T``; outside the blocks the embedding sum and the
    final LayerNorm ``3 T d`` and the log-softmax of the logits ``T vocab``. With dropout the
    attention runs unfused: per block ``3 n_head T^2`` more floats (probabilities, mask, dropped
    probabilities) instead of the log-sum-exp, and the masks of the two residual dropouts
    ``2 T d``; the embedding dropout's mask adds ``T d``. Measured with
    ``torch.autograd.graph.saved_tensors_hooks`` it is within 8%
    (``tests/trials_tests/test_catalog_accounting.py``).
    """
    T, d, L, h = block_size, n_embd, n_layer, n_head
    floats = L * (16 * T * d + h * T) + 3 * T * d + T * vocab_size
    if dropout > 0:  # unfused attention: 3 h T^2, its log-sum-exp gone; masks of 2 + 1 dropouts
        floats += L * (3 * h * T * T - h * T + 2 * T * d) + T * d
    return 4 * batch_size * floats


def linreg_activation_bytes(*, dim: int, batch_size: int) -> int:
    """Bytes of one linreg step beyond the weights: the float32 features drawn (noise and
    scaled, ``2 B d``) and the copy autograd keeps (``B d``), plus the problem's float64/float32
    spectrum and target vectors (``40 d``)."""
    return 12 * batch_size * dim + 40 * dim
