"""The decision-path model: causal and padding invariances, the three losses, checkpoints, and learning a pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from siyu.metrics import auc, ranking_metrics, target_ranks
from training.sequence.artifacts import compare_artifacts, request_tokens
from training.sequence.data import ACTIONS, GAP_TOKENS, Split, from_steps, leave_last_out
from training.sequence.model import DecisionPathModel, SequenceModelConfig
from training.sequence.recommender import SASRecRecommender
from training.sequence.retrieval import candidate_recall
from training.sequence.train import train

N_ITEMS = 30
# One thread: a model this small gains nothing from two, and loses several-fold when the cores are busy.
SMALL = SequenceModelConfig(
    hidden=32, heads=2, layers=2, dropout=0.1, max_len=16, lr=5e-3, batch_size=64, seed=3, threads=1, query_gap=False
)


def cycling_steps(users: int = 160, seed: int = 0) -> pd.DataFrame:
    """Every user walks the catalogue in order (i01 -> i02 -> ... -> i30 -> i01) from a random start.

    Sessions are four steps long and end in a purchase, so the intent label has both classes.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        start, length = int(rng.integers(0, N_ITEMS)), int(rng.integers(6, 20))
        for s in range(length):
            item = f"i{(start + s) % N_ITEMS + 1:02d}"
            action = ("view", "view", "add_to_cart", "purchase")[s % 4]
            channel = "app" if (u + s) % 3 else "mini_program"
            rows.append((f"u{u:03d}", item, 1_700_000_000 + 300 * s, action, channel, f"u{u}-{s // 4}"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "time", "action", "channel", "session_id"])


@pytest.fixture(scope="module")
def split() -> Split:
    return leave_last_out(from_steps(cycling_steps()))


@pytest.fixture(scope="module")
def fitted(split: Split) -> SASRecRecommender:
    rec = SASRecRecommender(SMALL.model_copy(update={"max_epochs": 15, "patience": 15}))
    rec.fit(split)
    return rec


def random_tokens(batch: int, length: int, n_items: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(1, n_items + 1, (batch, length), generator=g),
        torch.randint(1, len(ACTIONS) + 1, (batch, length), generator=g),
        torch.randint(1, 3, (batch, length), generator=g),
        torch.randint(1, GAP_TOKENS, (batch, length), generator=g),
    ]


def test_output_shapes(split: Split, fitted: SASRecRecommender) -> None:
    model = DecisionPathModel(SMALL, n_items=N_ITEMS, n_channels=2)
    item_logits, intent_logits = model(*random_tokens(3, 7, N_ITEMS))
    assert item_logits.shape == (3, 7, N_ITEMS + 1)
    assert intent_logits.shape == (3, 7)
    users, cut = split.valid.users[:5], split.valid.cut[:5]
    scores = fitted.score(split.data, users, cut)
    assert scores.shape == (5, split.data.n_items + 1) and scores.dtype == np.float32
    assert np.isfinite(scores[:, 1:]).all()
    probs = fitted.intent(split.data, users, cut)
    assert probs.shape == (5,) and ((probs >= 0) & (probs <= 1)).all()


# The defaults carry an attention bias by sessions apart (read from gaps) and an output bias per item.
SESSIONS = SMALL.model_copy(update={"session_bias": True, "item_bias": True})
PLAIN = SMALL.model_copy(update={"session_bias": False, "item_bias": False})


@pytest.mark.parametrize("config", [PLAIN, SESSIONS], ids=["plain", "session-aware"])
@pytest.mark.parametrize("which", [0, 1, 2, 3], ids=["item", "action", "channel", "gap"])
def test_a_later_step_never_changes_an_earlier_position(which: int, config: SequenceModelConfig) -> None:
    model = DecisionPathModel(config, n_items=N_ITEMS, n_channels=2).eval()
    if config.session_bias:  # a bias that starts at zero would hide a leak through it
        torch.nn.init.normal_(model.session_bias.weight)
    tokens = random_tokens(4, 10, N_ITEMS)
    changed = [t.clone() for t in tokens]
    changed[which][:, 6] = changed[which][:, 6] % (changed[which].max()) + 1  # a different real token at step 6
    with torch.no_grad():
        before, after = model.encode(*tokens), model.encode(*changed)
    torch.testing.assert_close(before[:, :6], after[:, :6], rtol=0, atol=0)
    assert not torch.allclose(before[:, 6], after[:, 6])


@pytest.mark.parametrize("config", [PLAIN, SESSIONS], ids=["plain", "session-aware"])
def test_padding_never_changes_real_positions(config: SequenceModelConfig) -> None:
    model = DecisionPathModel(config, n_items=N_ITEMS, n_channels=2).eval()
    if config.session_bias:
        torch.nn.init.normal_(model.session_bias.weight)
    tokens = random_tokens(1, 6, N_ITEMS)
    padded = [torch.cat([torch.zeros(1, 9, dtype=t.dtype), t], dim=1) for t in tokens]
    with torch.no_grad():
        alone, with_padding = model.encode(*tokens), model.encode(*padded)
    assert torch.isfinite(with_padding).all()
    torch.testing.assert_close(alone, with_padding[:, 9:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", ["softmax", "sampled", "gbce"])
def test_each_loss_trains_and_loss_decreases(split: Split, loss: str) -> None:
    result = train(split, SMALL.model_copy(update={"loss": loss, "n_negatives": 8, "max_epochs": 8, "patience": 8}))
    losses = [r.loss for r in result.history]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert result.sequences_per_second > 0 and result.best_epoch >= 1


def test_learns_a_deterministic_pattern(split: Split, fitted: SASRecRecommender) -> None:
    test = split.test
    scores = fitted.score(split.data, test.users, test.cut)
    seen = _seen(split, test.users, test.cut)
    assert ranking_metrics(target_ranks(scores, test.target, seen), 10)["hr@10"] > 0.95
    assert fitted.result is not None and fitted.result.best_ndcg10 > 0.8


def test_intent_head_reads_the_session_so_far(split: Split) -> None:
    # Sessions go view, view, add_to_cart, purchase: a purchase follows every step but the last. Early
    # stopping watches next-item NDCG, which is perfect within two epochs here, so the head gets full weight
    # and small batches to learn in that time.
    rec = SASRecRecommender(SMALL.model_copy(update={"intent_weight": 1.0, "batch_size": 16, "max_epochs": 6}))
    rec.fit(split)
    data = split.data
    users = np.flatnonzero(data.lengths >= 8)  # the first two sessions are complete
    users, cut = np.tile(users, 4), np.repeat([2, 3, 4, 5], users.size)
    labels = data.purchase_follows[data.offsets[users] + cut - 1]
    assert 0 < labels.mean() < 1
    assert auc(labels, rec.intent(data, users, cut)) > 0.85


def test_save_and_load_give_identical_scores(split: Split, fitted: SASRecRecommender, tmp_path: Path) -> None:
    loaded = SASRecRecommender.load(fitted.save(tmp_path / "model.pt"))
    users, cut = split.test.users, split.test.cut
    np.testing.assert_array_equal(fitted.score(split.data, users, cut), loaded.score(split.data, users, cut))
    np.testing.assert_array_equal(fitted.intent(split.data, users, cut), loaded.intent(split.data, users, cut))


def test_a_model_saved_before_the_session_knobs_loads_as_it_was_trained(split: Split, tmp_path: Path) -> None:
    older = SASRecRecommender(PLAIN.model_copy(update={"max_epochs": 1}))
    older.fit(split)
    path = older.save(tmp_path / "older.pt")
    state = torch.load(path, weights_only=True)
    for knob in ("session_bias", "item_bias"):  # what a file written before these knobs holds
        del state["config"][knob]
    torch.save(state, path)
    loaded = SASRecRecommender.load(path)
    assert not loaded.config.session_bias and not loaded.config.item_bias
    users, cut = split.test.users, split.test.cut
    np.testing.assert_array_equal(older.score(split.data, users, cut), loaded.score(split.data, users, cut))


def test_same_seed_same_scores(split: Split) -> None:
    config = SMALL.model_copy(update={"max_epochs": 3})
    a, b = SASRecRecommender(config), SASRecRecommender(config)
    a.fit(split)
    b.fit(split)
    users, cut = split.valid.users, split.valid.cut
    np.testing.assert_array_equal(a.score(split.data, users, cut), b.score(split.data, users, cut))


def test_resume_continues_from_the_saved_epoch(split: Split, tmp_path: Path) -> None:
    config = SMALL.model_copy(update={"max_epochs": 4, "patience": 10})
    straight = train(split, config)
    first = train(split, config.model_copy(update={"max_epochs": 2}), checkpoint_dir=tmp_path)
    assert [r.epoch for r in first.history] == [1, 2]
    resumed = train(split, config, checkpoint_dir=tmp_path, resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert [r.loss for r in resumed.history] == pytest.approx([r.loss for r in straight.history], rel=1e-5)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_another_model(split: Split, tmp_path: Path) -> None:
    train(split, SMALL.model_copy(update={"max_epochs": 1}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="hidden"):
        train(split, SMALL.model_copy(update={"hidden": 16}), checkpoint_dir=tmp_path, resume=True)


def test_budget_stops_with_a_usable_model(split: Split) -> None:
    result = train(split, SMALL.model_copy(update={"budget_seconds": 1e-3}))
    assert result.stop_reason == "budget" and len(result.history) == 1


def test_grown_catalogue_scores_known_items_only(split: Split, fitted: SASRecRecommender) -> None:
    frame = cycling_steps()
    newcomer = frame.iloc[[0]].assign(user_id="u999", item_id="i99", session_id="new")  # an item the model never saw
    grown = from_steps(pd.concat([frame, newcomer], ignore_index=True))
    assert grown.n_items == N_ITEMS + 1
    user = int(np.flatnonzero(grown.user_ids == frame["user_id"].iloc[0])[0])
    scores = fitted.score(grown, np.array([user]), np.array([grown.lengths[user]]))
    assert scores.shape == (1, N_ITEMS + 2)
    assert scores[0, -1] == -np.inf  # i99 sorts last: the model never saw it
    original = fitted.score(split.data, np.array([user]), np.array([split.data.lengths[user]]))
    np.testing.assert_allclose(scores[0, 1:-1], original[0, 1:], rtol=1e-5, atol=1e-5)


def _seen(split: Split, users: np.ndarray, cut: np.ndarray) -> sp.csr_matrix:
    rows = np.repeat(np.arange(users.size), cut)
    starts = split.data.offsets[users]
    steps = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, cut, strict=True)])
    return sp.csr_matrix(
        (np.ones(rows.size), (rows, split.data.item[steps])), shape=(users.size, split.data.n_items + 1)
    )


def test_auto_loss_is_full_softmax_until_the_catalogue_is_large() -> None:
    from training.sequence.losses import NextItemLoss
    from training.sequence.model import SOFTMAX_MAX_ITEMS

    small = NextItemLoss(SequenceModelConfig(), torch.ones(SOFTMAX_MAX_ITEMS + 1))
    large = NextItemLoss(SequenceModelConfig(), torch.ones(SOFTMAX_MAX_ITEMS + 2))
    assert (small.kind, large.kind) == ("softmax", "sampled")


def test_every_inference_artifact_answers_like_the_eager_model(split: Split, fitted: SASRecRecommender) -> None:
    users, cut = split.test.users[:8], split.test.cut[:8]
    network = fitted.model
    artifacts = compare_artifacts(network, request_tokens(network, split.data, users, cut), k=5, warmup=2)
    assert set(artifacts) == {"state_dict", "torchscript", "torch_export"}
    for name, row in artifacts.items():
        assert "error" not in row, (name, row)
        assert row["same_top_k"] == 1.0 and row["ms_per_request"] > 0 and row["load_ms"] > 0


def test_read_gives_the_scores_and_intent_of_separate_calls(split: Split, fitted: SASRecRecommender) -> None:
    users, cut = split.test.users[:6], split.test.cut[:6]
    scores, intent = fitted.read(split.data, users, cut)
    np.testing.assert_array_equal(scores, fitted.score(split.data, users, cut))
    np.testing.assert_allclose(intent, fitted.intent(split.data, users, cut), rtol=1e-6)


def test_candidate_recall_of_the_union_covers_each_source(split: Split, fitted: SASRecRecommender) -> None:
    recall = candidate_recall(split, fitted, path_candidates=3, popular_candidates=2)
    sources = ("recall_popular", "recall_decision_path", "recall_co_occurrence")
    assert all(0 <= recall[k] <= recall["recall_union"] <= 1 for k in sources)
    assert recall["recall_decision_path"] > recall["recall_popular"]  # the cycles are learnt, popularity is flat
    everything = candidate_recall(split, fitted, path_candidates=3, popular_candidates=split.data.n_items)
    assert everything["recall_popular"] == everything["recall_union"] == 1.0


def test_query_gap_conditions_scores_on_the_time_of_the_request(split: Split) -> None:
    rec = SASRecRecommender(SMALL.model_copy(update={"query_gap": True, "max_epochs": 3}))
    rec.fit(split)
    users, cut = split.data.lengths.argmax()[None], split.data.lengths.max()[None]  # a whole history: no target
    newest = int(split.data.time[split.data.offsets[users[0] + 1] - 1])
    soon, _ = rec.read(split.data, users, cut, now=newest + 30)
    later, _ = rec.read(split.data, users, cut, now=newest + 40 * 86_400)
    unknown, _ = rec.read(split.data, users, cut)
    assert not np.allclose(soon[:, 1:], later[:, 1:]) and not np.allclose(soon[:, 1:], unknown[:, 1:])


def test_without_query_gap_the_request_time_changes_nothing(split: Split, fitted: SASRecRecommender) -> None:
    users = np.arange(4)
    whole = split.data.lengths[users]  # whole histories: no target time to read
    np.testing.assert_array_equal(
        fitted.read(split.data, users, whole, now=2e9)[0], fitted.read(split.data, users, whole)[0]
    )


def test_category_side_info_ties_items_to_their_category_and_survives_save_and_load(tmp_path: Path) -> None:
    steps = cycling_steps(users=60).assign(
        category_id=lambda f: "c" + (f["item_id"].str[1:].astype(int) % 3).astype(str)
    )
    split = leave_last_out(from_steps(steps))
    assert split.data.n_categories == 3
    rec = SASRecRecommender(SMALL.model_copy(update={"max_epochs": 2}))
    rec.fit(split)
    model = rec._fitted()
    assert model.category is not None
    vectors = model.item_vectors().detach()
    own = model.item.weight.detach()
    shared = model.category.weight.detach()[torch.as_tensor(split.data.item_category, dtype=torch.int64)]
    torch.testing.assert_close(vectors, own + shared)  # every item's vector carries its category's
    assert torch.count_nonzero(vectors[0]) == 0  # padding stays zero
    loaded = SASRecRecommender.load(rec.save(tmp_path / "model.pt"))
    users, cut = split.test.users, split.test.cut
    np.testing.assert_array_equal(rec.score(split.data, users, cut), loaded.score(split.data, users, cut))
    off = DecisionPathModel(
        SMALL.model_copy(update={"category_side_info": False}), N_ITEMS, 2, split.data.item_category
    )
    assert off.category is None and "item_category" not in off.state_dict()
    assert DecisionPathModel(SMALL, N_ITEMS, 2).category is None  # a log without categories


def test_session_bias_sets_attention_by_sessions_apart_and_the_item_bias_reaches_every_loss() -> None:
    model = DecisionPathModel(SESSIONS, n_items=N_ITEMS, n_channels=2).eval()
    with torch.no_grad():
        model.session_bias.weight.normal_()
        model.output_bias.normal_()
        model.gap.weight[7] = model.gap.weight[3]  # the two gaps below differ only in opening a session
    item, action, channel, _ = random_tokens(1, 6, N_ITEMS)
    within = torch.tensor([[1, 2, 2, 3, 2, 2]])  # one session: every gap under an hour
    split_in_two = torch.tensor([[1, 2, 2, 7, 2, 2]])  # a day's gap before step 3 opens a second session
    with torch.no_grad():
        one, two = model.encode(item, action, channel, within), model.encode(item, action, channel, split_in_two)
        # Steps before the boundary see the same sessions either way; from it on, only the bias tells them apart.
        torch.testing.assert_close(one[:, :3], two[:, :3], rtol=0, atol=0)
        assert not torch.allclose(one[:, 4:], two[:, 4:])
        model.session_bias.weight.zero_()
        no_bias = model.encode(item, action, channel, within), model.encode(item, action, channel, split_in_two)
        torch.testing.assert_close(*no_bias, rtol=0, atol=0)
        queries, table = model.scoring_pair(one[0])
        torch.testing.assert_close(queries @ table.T, model.item_logits(one[0]))
