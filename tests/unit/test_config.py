"""Settings layers: defaults < jobstream.toml < environment < flags, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream.config import load_settings, sources
from jobstream.errors import ConfigError


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("NATS_URL", "STATE_DIR", "POOL", "LEASE_S", "IDLE_TIMEOUT_S"):
        monkeypatch.delenv(f"JOBSTREAM_{name}", raising=False)
    return tmp_path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.nats_url is None and settings.lease_s == 30.0
    assert sources()["pool"] == ("default", "default")


def test_precedence(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / "jobstream.toml").write_text('pool = "file"\nlease_s = 5\nidle_timeout_s = 7\n')
    nested = isolated / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)  # found upward
    monkeypatch.setenv("JOBSTREAM_LEASE_S", "9")
    settings = load_settings(idle_timeout_s=1.0)
    assert (settings.pool, settings.lease_s, settings.idle_timeout_s) == ("file", 9.0, 1.0)
    where = sources(idle_timeout_s=1.0)
    assert where["pool"][1].endswith("jobstream.toml")
    assert where["lease_s"][1] == "environment JOBSTREAM_LEASE_S"
    assert where["idle_timeout_s"][1] == "command line"


def test_user_config_dir(isolated: Path) -> None:
    user = isolated / "xdg" / "jobstream"
    user.mkdir(parents=True)
    (user / "jobstream.toml").write_text('nats_url = "nats://127.0.0.1:4333"\n')
    assert load_settings().nats_url == "nats://127.0.0.1:4333"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lease = 3\n", "unknown key 'lease'"),
        ('lease_s = "abc"\n', "setting 'lease_s'"),
        ("lease_s = -1\n", "setting 'lease_s'"),
        ("pool = \n", "jobstream.toml"),
    ],
)
def test_bad_file_names_file_and_key(isolated: Path, text: str, message: str) -> None:
    (isolated / "jobstream.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings()
    assert "jobstream.toml" in str(info.value)


def test_bad_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTREAM_LEASE_S", "soon")
    with pytest.raises(ConfigError, match="JOBSTREAM_LEASE_S"):
        load_settings()
