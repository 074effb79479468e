"""The operators' compose file, checked without a container tool (issue 17, item 8):
`compose.yaml` is valid against the Compose Specification's JSON Schema (kept in
tests/fixtures/compose/ with its source), and it runs what the README promises — two
salesbot replicas built from the Dockerfile on one PostgreSQL, behind a round-robin reverse
proxy that is the only thing published, with health checks, SIGTERM draining and every
secret in an env file. Nothing here is skipped where Docker is absent."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs installed

from bot.server import SHUTDOWN_TIMEOUT_S

ROOT = Path(__file__).parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json"
SALESBOT_PORT = 3000


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def salesbot_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile."""
    return {name: spec for name, spec in services().items() if "build" in spec}


def validator() -> Any:
    """The schema's own draft (07; its `$schema` URL lacks the trailing `#` jsonschema
    looks drafts up by, so the draft is named here rather than guessed)."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"].rstrip("#") == "https://json-schema.org/draft-07/schema"
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def seconds(duration: str) -> float:
    """A Compose duration ("30s", "1m30s") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def env_file_paths(spec: dict[str, Any]) -> list[str]:
    entries = spec.get("env_file", [])
    entries = [entries] if isinstance(entries, str) else entries
    return [entry if isinstance(entry, str) else entry["path"] for entry in entries]


def env_keys(path: Path) -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#") and "=" in line
    }


def test_the_schema_is_the_published_one_named_in_its_source_note() -> None:
    note = (SCHEMA.parent / "SOURCE.md").read_text(encoding="utf-8")
    assert "compose-spec/compose-spec" in note
    assert "schema/compose-spec.json" in note
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in note


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    errors = sorted(validator().iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "broken",
    [
        {"services": {"bot": {"image": "x", "healthcheck": {"test": 1}}}},
        {"services": {"bot": {"image": "x", "depends_on": {"db": {"condition": "ready"}}}}},
        {"services": {"bot": {"image": "x", "stop_grace_period": 30}}},
        {"services": {"bot": {"image": "x", "restart_policy": "always"}}},
    ],
    ids=["healthcheck test", "depends_on condition", "grace period type", "unknown key"],
)
def test_the_schema_refuses_what_compose_would(broken: dict[str, Any]) -> None:
    assert list(validator().iter_errors(broken))


def test_two_salesbot_replicas_run_the_image_of_the_dockerfile() -> None:
    replicas = salesbot_services()
    assert len(replicas) == 2
    for spec in replicas.values():
        assert spec["build"]["context"] == "."
        assert (ROOT / spec["build"]["dockerfile"]).is_file()
        assert spec["command"] == ["serve"]
    assert len({spec["image"] for spec in replicas.values()}) == 1


def test_the_replicas_keep_their_store_in_the_compose_postgresql_without_a_password_in_the_file() -> (
    None
):
    postgres = services()["postgres"]
    assert postgres["image"].startswith("postgres:")
    database = postgres["environment"]["POSTGRES_DB"]
    user = postgres["environment"]["POSTGRES_USER"]
    for spec in salesbot_services().values():
        url = urlsplit(spec["environment"]["SALESBOT_DB"])
        assert url.scheme == "postgresql"
        assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{database}")
        assert url.username == user
        assert url.password is None  # PGPASSWORD comes from the env file
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_secret_comes_from_an_env_file_whose_template_is_in_the_repository() -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    for secret in ("PASSWORD", "TOKEN", "SECRET"):
        assert not re.search(rf"^\s*[A-Z_]*{secret}[A-Z_]*\s*:", text, re.MULTILINE)
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "deploy/*.env" in ignored
    context = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert context[next(i for i, line in enumerate(context) if not line.startswith("#"))] == "*"
    assert not [line for line in context if line.startswith("!deploy")]  # never in the image
    (salesbot_file,) = {
        path for spec in salesbot_services().values() for path in env_file_paths(spec)
    }
    salesbot_env = env_keys(ROOT / f"{salesbot_file}.example")
    postgres_env = env_keys(ROOT / f"{env_file_paths(services()['postgres'])[0]}.example")
    assert "PGPASSWORD" in salesbot_env
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TEAMS_APP_PASSWORD"} <= salesbot_env
    assert postgres_env == {"POSTGRES_PASSWORD"}  # the database sees none of the bot's secrets
    documented = env_keys(ROOT / ".env.example")
    assert salesbot_env - {"PGPASSWORD"} <= documented


def test_only_the_proxy_is_published_and_it_round_robins_over_both_replicas_by_readiness() -> None:
    published = {name for name, spec in services().items() if spec.get("ports")}
    assert published == {"proxy"}
    proxy = services()["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in proxy["volumes"]}
    caddyfile = (ROOT / mounted["/etc/caddy/Caddyfile"]).read_text(encoding="utf-8")
    upstreams = re.search(r"^\s*reverse_proxy\s+(.+?)\s*\{", caddyfile, re.MULTILINE)
    assert upstreams is not None
    assert set(upstreams.group(1).split()) == {
        f"{name}:{SALESBOT_PORT}" for name in salesbot_services()
    }
    assert re.search(r"^\s*lb_policy round_robin$", caddyfile, re.MULTILINE)
    assert re.search(r"^\s*health_uri /readyz$", caddyfile, re.MULTILINE)
    assert re.search(r"^\s*lb_try_duration \d+s$", caddyfile, re.MULTILINE)
    # The per-process Prometheus counters stay on the compose network.
    assert re.search(r"^\s*respond /metrics 404$", caddyfile, re.MULTILINE)
    for name in salesbot_services():
        assert proxy["depends_on"][name]["condition"] == "service_healthy"
    for spec in salesbot_services().values():
        assert spec["environment"]["SALESBOT_PORT"] == str(SALESBOT_PORT)
        assert spec["environment"]["SALESBOT_HOST"] == "0.0.0.0"


def test_every_service_has_a_health_check_and_a_replica_is_healthy_when_ready() -> None:
    for name, spec in services().items():
        assert spec["healthcheck"]["test"][0] == "CMD", name
    for spec in salesbot_services().values():
        assert any("/readyz" in part for part in spec["healthcheck"]["test"])
    assert services()["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_a_replica_is_stopped_with_sigterm_and_given_time_to_drain() -> None:
    for spec in salesbot_services().values():
        assert spec["stop_signal"] == "SIGTERM"
        assert seconds(spec["stop_grace_period"]) >= 2 * SHUTDOWN_TIMEOUT_S
        assert spec["restart"] == "unless-stopped"
