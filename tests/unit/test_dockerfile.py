"""The container image, checked as Docker reads its Dockerfile (issue 17, item 8): a slim
Python base, the package installed from its exact pins, every package of the distribution
copied in, an unprivileged user, `salesbot serve` as the entry point, a health check on
`/healthz`, SIGTERM to stop (serve drains on it), and a build context of sources only. No
container tool is needed: nothing here is skipped where Docker is absent."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).parents[2]


def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    parsed: list[dict[str, Any]] = parser.structure
    return parsed


def runtime_stage() -> list[dict[str, Any]]:
    """The instructions after the last FROM: what the image runs."""
    found = instructions()
    last_from = max(i for i, ins in enumerate(found) if ins["instruction"] == "FROM")
    return found[last_from:]


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [ins["value"] for ins in stage if ins["instruction"] == instruction]


def test_both_stages_start_from_a_slim_python_of_the_supported_version() -> None:
    bases = values(instructions(), "FROM")
    assert len(bases) == 2
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = requires.removeprefix(">=")
    for base in bases:
        image = base.split()[0]
        assert image.startswith(f"python:{minimum}-slim")


def test_the_package_is_installed_from_its_exact_pins_with_every_package_copied() -> None:
    build = instructions()
    runs = " ".join(values(build, "RUN"))
    assert "pip install -c constraints.txt ." in runs
    copied = {value.split()[0] for value in values(build, "COPY") if "--from" not in value}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    top_level = {name.split(".")[0] for name in packages}
    assert top_level <= copied
    assert {"pyproject.toml", "constraints.txt", "README.md"} <= set(
        values(build, "COPY")[0].split()[:-1]
    )


def test_the_image_runs_salesbot_serve_as_an_unprivileged_user() -> None:
    stage = runtime_stage()
    (user,) = values(stage, "USER")
    assert user not in {"root", "0"}
    assert any("useradd --system --uid 10001" in run for run in values(stage, "RUN"))
    assert json.loads(values(stage, "ENTRYPOINT")[0]) == ["salesbot"]
    assert json.loads(values(stage, "CMD")[0]) == ["serve"]
    assert values(stage, "STOPSIGNAL") == ["SIGTERM"]
    env = " ".join(values(stage, "ENV"))
    assert "SALESBOT_DB=/var/lib/salesbot/salesbot.db" in env
    assert "SALESBOT_HOST=0.0.0.0" in env
    assert values(stage, "VOLUME") == ['["/var/lib/salesbot"]']
    assert values(stage, "EXPOSE") == ["3000"]


def test_the_health_check_asks_healthz_on_the_configured_port() -> None:
    (check,) = values(runtime_stage(), "HEALTHCHECK")
    assert "--interval=" in check
    assert "--timeout=" in check
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]
    assert "SALESBOT_PORT" in command[2]
    compile(command[2], "<healthcheck>", "exec")  # the probe is valid Python


def test_the_build_context_holds_sources_only() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"  # everything is left out unless named
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    build = instructions()
    copied = {
        part.rstrip("/")
        for value in values(build, "COPY")
        if "--from" not in value
        for part in value.split()[:-1]
    }
    assert copied <= allowed
    for secret_prone in (".env", "salesbot.db", "tests", "data", ".git"):
        assert secret_prone not in allowed
