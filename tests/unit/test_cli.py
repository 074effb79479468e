"""The `salesbot` command line: its output, JSON keys and exit codes are a contract."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.support.schemas import assert_valid


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


SCHEMA_OF = {"score": "lead_score", "quote": "quote", "narrative": "narrative", "check": "check"}
"""The published schema (`docs/schemas/`) of each command's JSON."""


def run_json(*argv: str) -> dict[str, Any]:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    assert_valid(SCHEMA_OF[argv[0]], data)
    return data


@pytest.fixture(autouse=True)
def _no_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)


def test_score_json_has_the_contract_keys_and_exact_contributions() -> None:
    data = run_json(
        "score", "We have a $5000 budget and want to start next month", "--policy", "seed"
    )
    assert {"score", "band", "features", "contributions", "policy"} <= set(data)
    assert data["score"] == 0.8
    assert data["band"] == "hot"
    assert data["contributions"] == {"budget": 0.5, "timeline": 0.3, "authority": 0.0}
    assert data["policy"]["name"] == "seed"
    assert len(data["policy"]["version"]) == 64


def test_quote_json_reproduces_the_notebook_in_integer_cents() -> None:
    data = run_json(
        "quote",
        "--qty",
        "10",
        "--unit",
        "199",
        "--discount",
        "0.1",
        "--policy",
        "seed",
        "--now",
        "2026-11-24T12:00:00Z",
    )
    assert data["subtotal_cents"] == 199000
    assert data["discount_cents"] == 19900
    assert data["total_cents"] == 179100
    assert data["tax_cents"] == 0
    assert data["needs_approval"] is False
    assert data["currency"] == "USD"
    assert data["unit_cents"] == 19900
    assert all(
        isinstance(data[k], int) for k in ("subtotal_cents", "discount_cents", "total_cents")
    )
    assert any("1,990.00" in line for line in data["proof"])


def test_the_same_quote_at_the_same_time_has_the_same_id() -> None:
    argv = ("quote", "--qty", "3", "--sku", "pro", "--now", "2026-11-24T12:00:00Z")
    assert run_json(*argv)["quote_id"] == run_json(*argv)["quote_id"]
    later = run_json("quote", "--qty", "3", "--sku", "pro", "--now", "2026-11-25T12:00:00Z")
    assert later["quote_id"] != run_json(*argv)["quote_id"]


def test_a_discount_above_the_rep_cap_is_issued_with_needs_approval() -> None:
    data = run_json(
        "quote", "--qty", "10", "--sku", "PRO", "--discount", "20%", "--now", "2026-11-24T00:00:00Z"
    )
    assert data["needs_approval"] is True
    assert data["total_cents"] == 159200


def test_narrative_json_has_the_notebooks_reason_text_and_a_stable_code() -> None:
    data = run_json(
        "narrative",
        "This is urgent, we need priority support",
        "--credit",
        "580",
        "--policy",
        "seed",
    )
    assert data["resonance"] == 0.1
    assert data["raw_urgency"] == 0.8
    assert data["penalized_urgency"] == 0.16
    assert data["reason"] == "penalized (credit 580 < 600)"
    assert data["reason_code"] == "credit_below_threshold"
    assert set(data["contrib_res"]) == {"story_future", "urgency", "emotional_valence"}
    assert set(data["contrib_urg"]) == {"story_future", "urgency", "emotional_valence"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("quote", "--qty", "-5", "--sku", "PRO"), "positive whole number"),
        (("quote", "--qty", "5", "--sku", "PRO", "--discount", "0.5"), "above the maximum of 30%"),
        (("quote", "--qty", "5", "--sku", "GOLD"), "Unknown SKU"),
        (("quote", "--qty", "5", "--unit", "19.999"), "19.999"),
        (("quote", "--qty", "5"), "--unit"),
        (("quote", "--qty", "5", "--sku", "PRO", "--now", "yesterday"), "ISO 8601"),
        (("score", "hello", "--policy", "/nonexistent/policy.toml"), "policy file not found"),
        (("check", "--policy", "gold"), "unknown policy"),
        (("flow", "--format", "png"), "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_line_on_stderr_and_exit_2(
    argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(*argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_malformed_toml_exits_2_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = \n", encoding="utf-8")
    code, _, err = run("check", "--policy", str(path))
    assert code == 2
    assert "bad.toml: malformed TOML" in err


def test_check_exits_0_when_clean_and_1_with_one_line_per_violation(tmp_path: Path) -> None:
    assert run("check")[0] == 0
    assert run("check", "--policy", "seed")[0] == 0
    path = tmp_path / "broken.toml"
    path.write_text(
        'extends = "default"\n'
        '[personas.salespro.templates.propose]\ntext = "Only $99 today!"\n'
        '[[flow.transitions]]\nfrom = "closed"\non = "prospect_message"\nto = "qualify"\n',
        encoding="utf-8",
    )
    code, out, _ = run("check", "--policy", str(path))
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) >= 2
    assert any("propose" in line for line in lines)
    assert any("terminal_has_transitions" in line for line in lines)


def test_flow_prints_mermaid_and_dot_with_every_state() -> None:
    _, mermaid, _ = run("flow", "--format", "mermaid")
    _, dot, _ = run("flow", "--format", "dot")
    assert mermaid.startswith("stateDiagram-v2")
    assert dot.startswith("digraph")
    for state in (
        "start",
        "greeting",
        "qualify",
        "objection",
        "proposal",
        "handoff",
        "closed",
        "abandoned",
    ):
        assert state in mermaid
        assert f'"{state}"' in dot


def test_the_policy_comes_from_salesbot_policy_when_no_flag_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESBOT_POLICY", "seed")
    assert run_json("score", "nextcloud")["policy"]["name"] == "seed"


def test_a_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESBOT_PORT", "three thousand")
    code, _, err = run("score", "hello")
    assert code == 2
    assert "SALESBOT_PORT" in err


def test_python_dash_m_bot_is_the_same_command() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "score",
            "--json",
            "--policy",
            "seed",
            "Curious about pricing",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["score"] == 0.0


def test_the_teams_manifest_and_package_come_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    monkeypatch.setenv("TEAMS_APP_ID", "11111111-2222-3333-4444-555555555555")
    code, out, _ = run("manifest", "teams")
    assert code == 0
    manifest = json.loads(out)
    assert manifest["manifestVersion"] == "1.30"
    assert manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    target = tmp_path / "app.zip"
    code, out, _ = run("teams-package", "--out", str(target))
    assert code == 0
    assert sorted(zipfile.ZipFile(target).namelist()) == [
        "color.png",
        "manifest.json",
        "outline.png",
    ]


def test_the_slack_manifest_from_the_cli_is_the_checked_in_one() -> None:
    code, out, _ = run("manifest", "slack")
    assert code == 0
    assert out == (Path(__file__).resolve().parents[2] / "manifest.json").read_text()
