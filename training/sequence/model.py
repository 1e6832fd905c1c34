"""The decision-path model: a SASRec-style causal transformer over (item, action, channel, time-gap) steps.

Each position sees only its own step and earlier ones, and emits two things: scores for the next item
(tied to the input item embeddings, so a rarely seen item's input and output vectors learn together)
and the logit of "a purchase follows later in this session" (the intent head). The action and channel
of step t enter position t only; the next-item target of position t is step t+1's item, whose action
and channel stay hidden behind the causal mask.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from training.sequence.data import ACTIONS, GAP_TOKENS, opens_session

SESSION_DISTANCES = 8  # sessions apart the attention bias tells from each other; farther ones share the last

# Catalogue size up to which loss="auto" trains with the full softmax (cheap enough on 2 cores below it).
SOFTMAX_MAX_ITEMS = 20_000


class SequenceModelConfig(BaseModel):
    """Architecture and training knobs; stored in every checkpoint so a saved model rebuilds itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden: int = Field(64, ge=8, description="(int) width of every embedding and transformer layer")
    layers: int = Field(2, ge=1, description="(int) transformer blocks")
    heads: int = Field(2, ge=1, description="(int) attention heads; must divide `hidden`")
    dropout: float = Field(
        0.4,
        ge=0.0,
        lt=1.0,
        description="(fraction) dropout on embeddings, block outputs and FFN. Validation NDCG@10 peaks within "
        "30 epochs at 0.2 on UCI Online Retail and then falls; 0.4 trains slower and ends higher when every "
        "window is read (full benchmark run: 0.2233 there, 1.01x transitions, against 0.2060 before). On the "
        "bootstrap world's 90 s budget, 0.4 scored 0.2309 against 0.2266 at 0.2",
    )
    max_len: int = Field(
        50,
        ge=2,
        description="(int) L: a training window's steps, and the newest L steps a read sees. 50, with four windows "
        "per user, the session bias, the item bias and the query gap: 0.2443 NDCG@10 on the 20k-user world against "
        "0.2313 at 200 with one window and none of them; short windows without the session bias, or the session "
        "bias over 200 steps, stayed within 0.003 of that",
    )
    lr: float = Field(1e-3, gt=0, description="(float) AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="(float) AdamW decoupled weight decay (embeddings included)")
    batch_size: int = Field(128, ge=1, description="(int) user sequences per optimiser step")
    windows_per_user: int | None = Field(
        None,
        ge=1,
        description="(int) training windows of max_len steps a long history gives, newest first (1 = only its "
        "last max_len steps, as in SASRec; None = every window, so each training step is a target once per "
        "epoch). Four windows left a quarter of UCI Online Retail's steps unread; every window with dropout "
        "0.4 scored 0.2203 NDCG@10 there against 0.2101 at dropout 0.2 (one thread, 20 minutes)",
    )
    loss: Literal["auto", "softmax", "sampled", "gbce"] = Field(
        "auto",
        description="(str) next-item loss: full softmax over all items; sampled softmax with logQ correction and "
        "popularity-proportional negatives; gSASRec's generalised BCE with uniform negatives; or auto = softmax "
        "up to SOFTMAX_MAX_ITEMS items (best measured on 2k-item worlds), sampled above (4x the sequences/s at 5k "
        "items and the better model within a fixed budget)",
    )
    n_negatives: int = Field(256, ge=1, description="(int) negatives per batch for `sampled` and `gbce`")
    gbce_t: float = Field(0.75, ge=0.0, le=1.0, description="(float) gSASRec calibration t (1 = plain BCE)")
    intent_weight: float = Field(0.2, ge=0.0, description="(float) weight of the purchase-intent BCE in the loss")
    seed: int = Field(42, description="(int) seeds initialisation, shuffling and dropout")
    max_epochs: int = Field(100, ge=1, description="(int) most passes over the training users")
    patience: int = Field(
        8,
        ge=1,
        description="(int) epochs without a better validation NDCG@10 before stopping: the sampled validation "
        "moves by about 0.002 from epoch to epoch, as much as a slow climb gains in several",
    )
    valid_sample: int | None = Field(
        10_000,
        ge=1,
        description="(int) validation questions early stopping scores each epoch, a fixed random subset "
        "(None = all); ranking every item for every user each epoch otherwise costs a fifth of an epoch",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="(int) torch CPU threads (None = every core this process may use). Use 1 on a machine shared "
        "with other CPU-heavy processes: two threads on two busy cores trained 2-4x slower than one (measured), "
        "each OpenMP barrier waiting for a descheduled thread",
    )
    query_gap: bool = Field(
        True,
        description="(bool) condition next-item scores on the time from the newest step to the request (the "
        "target's gap bucket in training): tells a continuing session from a new one",
    )
    budget_seconds: float | None = Field(
        None, gt=0, description="(seconds) wall-clock training budget; the best checkpoint so far is kept"
    )
    session_bias: bool = Field(
        True,
        description="(bool) a learned attention bias per head for how many sessions apart (a gap of an hour or "
        "more opens one) a query step and an earlier step are, so the current session can be read as a unit",
    )
    item_bias: bool = Field(
        True,
        description="(bool) a learned per-item output bias beside the tied vectors, so how popular an item is "
        "needs no direction in its vector and the vectors keep to what the history says",
    )
    category_side_info: bool = Field(
        True,
        description="(bool) add a category embedding to every item's input and output vector when the log names "
        "categories: items of one category share what is learnt about it, so a rarely seen item starts from its "
        "category's vector",
    )


class ByteDropout(nn.Module):
    """Dropout whose mask comes from random bytes, eight per 64-bit draw.

    On CPU, nn.Dropout's Bernoulli sampling cost more than the whole transformer's arithmetic at this width
    (about 40% of a training step); one int64 draw per eight elements makes it ~20x cheaper. The drop rate is
    rounded to a multiple of 1/256 (0.2 becomes 0.199), and the global torch generator keeps it seedable.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.threshold = min(round(p * 256), 255)
        self.scale = 256.0 / (256 - self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        words = (x.numel() + 7) // 8
        noise = torch.empty(words, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
        keep = noise.view(torch.uint8)[: x.numel()].view(x.shape) >= self.threshold
        return x * (keep.to(x.dtype) * self.scale)


class _CausalBlock(nn.Module):
    """Pre-LN transformer block around scaled_dot_product_attention.

    Hand-written rather than nn.TransformerEncoderLayer (within 5% of its speed on CPU at this size, measured)
    so every dropout is a ByteDropout and attention weights are not dropped: SDPA's own dropout draws one
    Bernoulli per (head, query, key) and also forces its slower unfused path.
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm_attn = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm_ffn = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), ByteDropout(dropout), nn.Linear(4 * hidden, hidden)
        )
        self.drop = ByteDropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).view(batch, length, 3, self.heads, hidden // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=allowed,
        )
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class DecisionPathModel(nn.Module):
    """Causal transformer over left-padded step tokens; `encode` gives one hidden state per position.

    Positions are counted back from the newest step (0 = newest), as SASRec's right-aligned windows do,
    so how much padding a batch adds never changes a real position's output.
    """

    def __init__(
        self,
        config: SequenceModelConfig,
        n_items: int,
        n_channels: int,
        item_category: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        """`item_category` ((n_items + 1,) category token per item token, 0 = none) switches the category
        embedding on when `config.category_side_info` allows it; it is saved with the weights."""
        super().__init__()
        if config.hidden % config.heads:
            raise ValueError(f"hidden={config.hidden} must be divisible by heads={config.heads}")
        self.config = config
        self.n_items = n_items
        self.n_channels = n_channels
        hidden = config.hidden
        self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.category: nn.Embedding | None = None
        if config.category_side_info and item_category is not None and int(torch.as_tensor(item_category).max()) > 0:
            tokens = torch.as_tensor(np.asarray(item_category), dtype=torch.int64)
            if tokens.shape != (n_items + 1,):
                raise ValueError(f"item_category has shape {tuple(tokens.shape)}, expected ({n_items + 1},)")
            self.register_buffer("item_category", tokens)
            self.category = nn.Embedding(int(tokens.max()) + 1, hidden, padding_idx=0)
        self.action = nn.Embedding(len(ACTIONS) + 1, hidden, padding_idx=0)
        self.channel = nn.Embedding(n_channels + 1, hidden, padding_idx=0)
        self.gap = nn.Embedding(GAP_TOKENS, hidden, padding_idx=0)
        self.position = nn.Embedding(config.max_len, hidden)
        self.drop = ByteDropout(config.dropout)
        self.blocks = nn.ModuleList([_CausalBlock(hidden, config.heads, config.dropout) for _ in range(config.layers)])
        self.norm = nn.LayerNorm(hidden)
        self.intent_head = nn.Linear(hidden, 1)
        self.query_gap = nn.Embedding(GAP_TOKENS, hidden, padding_idx=0) if config.query_gap else None
        self.output_bias = nn.Parameter(torch.zeros(n_items + 1)) if config.item_bias else None
        self.session_bias = nn.Embedding(SESSION_DISTANCES, config.heads) if config.session_bias else None
        if self.session_bias is not None:
            nn.init.zeros_(self.session_bias.weight)
        self._init_weights()

    def _init_weights(self) -> None:
        # Item vectors double as output weights: std 1/sqrt(hidden) against the unit-variance final LayerNorm
        # gives logits of unit spread at the start. With BERT's 0.02 the logits start flat, every item vector
        # first drifts the same way, and validation NDCG after one epoch was 0.26 instead of 0.38 (5k items).
        extra = tuple(e for e in (self.query_gap, self.category) if e is not None)
        for emb in (self.item, self.action, self.channel, self.gap, self.position, *extra):
            nn.init.normal_(emb.weight, std=self.config.hidden**-0.5 if emb in (self.item, self.category) else 0.02)
            if emb.padding_idx is not None:
                with torch.no_grad():
                    emb.weight[emb.padding_idx].zero_()

    def encode(
        self, item: torch.Tensor, action: torch.Tensor, channel: torch.Tensor, gap: torch.Tensor
    ) -> torch.Tensor:
        """Hidden states (batch, length, hidden) for left-padded (batch, length) token tensors; item 0 = padding."""
        length = item.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.config.max_len}")
        real = item != 0
        position = torch.arange(length - 1, -1, -1, device=item.device)
        x = F.embedding(item, self.item_vectors(), padding_idx=0)
        x = x + self.action(action) + self.channel(channel) + self.gap(gap) + self.position(position)
        x = self.drop(x)
        # Attend to earlier-or-same real steps; a padding row attends to itself only, so no row is empty (no NaN).
        causal = torch.ones(length, length, dtype=torch.bool, device=item.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=item.device)
        allowed = (causal & real[:, None, :]) | eye
        allowed = allowed.unsqueeze(1)  # broadcast over heads
        if self.session_bias is not None:
            allowed = self._with_session_bias(allowed, gap)
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)

    def _with_session_bias(self, allowed: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """The boolean mask as an additive float mask carrying each head's bias for the sessions between steps.

        Session numbers only count boundaries up to each step, so a position never learns of later steps.
        """
        session = torch.cumsum(opens_session(gap).to(torch.int64), dim=1)
        apart = (session[:, :, None] - session[:, None, :]).clamp(0, SESSION_DISTANCES - 1)
        bias = self.session_bias(apart).permute(0, 3, 1, 2)  # (batch, heads, length, length)
        return bias.masked_fill(~allowed, float("-inf"))

    def for_query(self, hidden: torch.Tensor, query_gap: torch.Tensor | None) -> torch.Tensor:
        """Hidden states conditioned on the request's gap token (0 = unknown: unchanged), when the config asks."""
        if self.query_gap is None or query_gap is None:
            return hidden
        return hidden + self.query_gap(query_gap)

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, hidden): each item token's vector, its own plus its category's; the input embedding
        and, tied, the output weights of the next-item scores."""
        if self.category is None:
            return self.item.weight
        return self.item.weight + self.category(self.item_category)

    def item_logits(self, hidden: torch.Tensor, item_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every item token (column 0 = padding) for hidden states (..., hidden); pass `item_vectors()`
        when scoring many batches under one set of weights."""
        logits = hidden @ (self.item_vectors() if item_vectors is None else item_vectors).T
        return logits if self.output_bias is None else logits + self.output_bias

    def scoring_pair(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(queries, output table) whose product is `item_logits(hidden)`: the bias rides as a constant input
        column, so every next-item loss scores with it without knowing it is there."""
        vectors = self.item_vectors()
        if self.output_bias is None:
            return hidden, vectors
        ones = torch.ones(*hidden.shape[:-1], 1, dtype=hidden.dtype)
        return torch.cat([hidden, ones], dim=-1), torch.cat([vectors, self.output_bias[:, None]], dim=-1)

    def intent_logit(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logit of P(a purchase follows later in this session) for hidden states (..., hidden)."""
        return self.intent_head(hidden).squeeze(-1)

    def forward(
        self, item: torch.Tensor, action: torch.Tensor, channel: torch.Tensor, gap: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(next-item logits (batch, length, items + 1), intent logits (batch, length)) at every position."""
        hidden = self.encode(item, action, channel, gap)
        return self.item_logits(hidden), self.intent_logit(hidden)
