"""Loading, versioning and checking policies."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from bot.policy_loader import bundled_policy_names, load_policy
from domain.errors import PolicyError
from domain.policy import Policy, policy_from_json
from domain.policy_check import check_policy


def _default_text() -> str:
    return resources.files("domain.policies").joinpath("default.toml").read_text(encoding="utf-8")


def test_the_default_and_seed_policies_ship_with_the_package() -> None:
    assert {"default", "seed"} <= set(bundled_policy_names())


def test_both_shipped_policies_pass_every_check(
    default_policy: Policy, seed_policy: Policy
) -> None:
    assert check_policy(default_policy) == ()
    assert check_policy(seed_policy) == ()


def test_the_seed_differs_from_the_default_only_where_the_notebook_speaks(
    default_policy: Policy, seed_policy: Policy
) -> None:
    assert seed_policy.version != default_policy.version
    assert seed_policy.scoring.matching == "substring"
    assert seed_policy.catalog == default_policy.catalog
    assert seed_policy.flow == default_policy.flow
    assert seed_policy.scoring.bands == default_policy.scoring.bands


def test_reformatting_a_policy_file_keeps_its_version(
    tmp_path: Path, default_policy: Policy
) -> None:
    reformatted = "# reformatted by hand\n\n" + "\n".join(
        line.replace(" = ", "   =   ") + "   # note"
        if " = " in line and not line.lstrip().startswith("#") and '"""' not in line
        else line
        for line in _default_text().splitlines()
    )
    path = tmp_path / "reformatted.toml"
    path.write_text(reformatted, encoding="utf-8")
    (tmp_path / "models").mkdir()
    model = resources.files("domain.policies").joinpath("models/default-reader.json")
    (tmp_path / "models" / "default-reader.json").write_bytes(model.read_bytes())
    (tmp_path / "knowledge").mkdir()
    knowledge = resources.files("domain.policies").joinpath("knowledge/default.toml")
    (tmp_path / "knowledge" / "default.toml").write_bytes(knowledge.read_bytes())
    assert load_policy(str(path)).version == default_policy.version


def test_a_model_file_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    model = resources.files("domain.policies").joinpath("models/default-reader.json")
    tampered = model.read_bytes().replace(b'"warm"', b'"warm" ', 1)
    (tmp_path / "models" / "default-reader.json").write_bytes(tampered)
    path = tmp_path / "copy.toml"
    path.write_text(_default_text(), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"understanding\.sha256"):
        load_policy(str(path))


def test_the_seed_policy_reads_with_lexicons_and_keeps_no_reader(seed_policy: Policy) -> None:
    assert seed_policy.understanding is None
    assert "understanding" not in json.loads(seed_policy.canonical_json())


def test_changing_a_weight_changes_the_version(tmp_path: Path, default_policy: Policy) -> None:
    path = tmp_path / "tuned.toml"
    path.write_text('extends = "default"\n[fairness]\nc0 = 610\n', encoding="utf-8")
    tuned = load_policy(str(path))
    assert tuned.fairness.c0 == 610
    assert tuned.version != default_policy.version


def test_a_policy_round_trips_through_its_stored_json(default_policy: Policy) -> None:
    restored = policy_from_json(default_policy.canonical_json())
    assert restored == default_policy
    assert restored.version == default_policy.version


def test_a_missing_policy_file_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError, match=r"nope\.toml: policy file not found"):
        load_policy(str(missing))


def test_an_unknown_policy_name_lists_the_bundled_ones() -> None:
    with pytest.raises(PolicyError, match=r"unknown policy 'gold'.*default"):
        load_policy("gold")


def test_malformed_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[catalog\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"broken.toml: malformed TOML: .*line 2"):
        load_policy(str(path))


def test_a_wrong_type_names_the_file_the_key_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('extends = "default"\n[catalog]\nmax_discount = "lots"\n', encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(str(path))
    message = str(caught.value)
    assert "typo.toml: catalog.max_discount:" in message
    assert "decimal" in message.lower()


def test_an_unknown_key_is_an_error_not_silently_ignored(tmp_path: Path) -> None:
    path = tmp_path / "extra.toml"
    path.write_text('extends = "default"\n[fairness]\nlamda = 0.5\n', encoding="utf-8")
    with pytest.raises(
        PolicyError, match=r"extra.toml: fairness.lamda: Extra inputs are not permitted"
    ):
        load_policy(str(path))


def test_an_extends_cycle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n', encoding="utf-8")
    with pytest.raises(PolicyError, match="extends cycle"):
        load_policy(str(tmp_path / "a.toml"))


def test_a_persona_name_that_is_not_defined_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "persona.toml"
    path.write_text('extends = "default"\npersona = "closer"\n', encoding="utf-8")
    with pytest.raises(PolicyError, match="persona 'closer' is not defined"):
        load_policy(str(path))


def test_check_reports_an_unbacked_price_claim_and_a_broken_flow(tmp_path: Path) -> None:
    path = tmp_path / "risky.toml"
    path.write_text(
        'extends = "default"\n'
        "[personas.salespro.templates.propose]\n"
        'text = "We can do 20% off if you sign today."\n'
        "[flow]\n"
        'terminal = ["closed", "abandoned", "handoff"]\n',
        encoding="utf-8",
    )
    problems = check_policy(load_policy(str(path)))
    assert any("propose" in line and "evidence" in line for line in problems)
    assert any(line.startswith("flow: ") for line in problems)
