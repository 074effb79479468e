"""The shipped model: trained on exactly the committed data and spec, loadable, reproducible."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

from bot.corpus import SPEC_FILE, TRAINING_DIR, data_hash, load_examples, load_spec
from bot.policy_loader import load_policy
from bot.training import model_text, train
from domain.understanding.model import BINARY_HEADS, MICRO, ReaderModel

MODEL = resources.files("domain.policies").joinpath("models/default-reader.json")


def test_the_shipped_model_was_trained_on_the_committed_data_and_spec() -> None:
    """Change the data or the spec and this fails until `make model` is run again."""
    training = json.loads(MODEL.read_text(encoding="utf-8"))["training"]
    assert training["data_sha256"] == data_hash([TRAINING_DIR])
    assert training["spec_sha256"] == hashlib.sha256(SPEC_FILE.read_bytes()).hexdigest()
    assert training["seed"] == load_spec(SPEC_FILE)[1].seed
    assert {"python", "numpy", "scipy", "snowballstemmer"} <= set(training["libraries"])


def test_the_default_policy_names_the_model_by_hash_and_the_weights_are_exact() -> None:
    policy = load_policy("default")
    assert policy.understanding is not None
    assert policy.understanding.sha256 == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    reader = policy.understanding.reader
    assert set(reader.heads) == set(BINARY_HEADS)
    document = json.loads(MODEL.read_text(encoding="utf-8"))
    some = next(iter(document["band"]["weights"].items()))
    assert reader.band.weights[some[0]] == round(some[1] * MICRO)
    assert all(len(repr(w).split(".")[-1]) <= 6 for w in document["band"]["weights"].values())


def test_the_same_inputs_give_the_same_model_file(tmp_path: Path) -> None:
    spec, config, spec_sha = load_spec(SPEC_FILE)
    small = dataclasses.replace(config, l2_grid=(1.0,), folds=3)
    examples = load_examples([TRAINING_DIR / "en-a.jsonl"])[:90]
    provenance = {"data_sha256": "test", "spec_sha256": spec_sha}
    first = model_text(train(examples, spec, small, provenance=provenance))
    second = model_text(train(list(examples), spec, small, provenance=provenance))
    assert first == second
    assert json.loads(first)["training"]["examples"] == 90


def test_every_shipped_head_has_a_calibrated_probability_that_rises_with_its_sum() -> None:
    policy = load_policy("default")
    assert policy.understanding is not None
    reader = policy.understanding.reader
    for name in ("band", *BINARY_HEADS):
        calibration = reader.head(name).calibration
        assert calibration is not None, name
        assert calibration.a > 0, name
        threshold = reader.band.hot if name == "band" else reader.head(name).threshold
        below = calibration.probability(threshold - MICRO)
        above = calibration.probability(threshold + MICRO)
        assert Decimal(0) <= below < above <= Decimal(1), name


def test_a_model_without_calibrations_hashes_and_serialises_as_before(tmp_path: Path) -> None:
    document = json.loads(MODEL.read_text(encoding="utf-8"))
    for head in (document["band"], *document["heads"].values()):
        head.pop("calibration", None)
    reader = ReaderModel.model_validate(document)
    assert all(reader.head(name).calibration is None for name in ("band", *BINARY_HEADS))
    dumped = json.loads(reader.model_dump_json())
    assert "calibration" not in dumped["band"]
    assert not any("calibration" in head for head in dumped["heads"].values())
