"""Settings: what a wrong or missing value tells the operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import KEY_LIMIT, ConfigError, load_settings
from bot.signing import Signer
from tests.conftest import EXAMPLE_CONFIG

REAL_LOOKING_TOKEN = "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI"


def write_config(tmp_path: Path, replace: tuple[str, str] | None = None, extra: str = "") -> Path:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "config.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def test_example_config_loads_with_token_from_environment() -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_BOT_TOKEN": REAL_LOOKING_TOKEN})
    assert settings.require_token() == REAL_LOOKING_TOKEN
    assert len([n for d in settings.counties[0].districts for n in d.neighbourhoods]) >= 12
    assert {d.key for d in settings.domains} >= {"municipal", "other"}


def test_missing_token_explains_how_to_get_one() -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={})
    with pytest.raises(ConfigError, match="@BotFather") as error:
        settings.require_token()
    assert "MAHALLE_BOT_TOKEN" in str(error.value)


@pytest.mark.parametrize(
    "token",
    [
        "YOUR_TOKEN_HERE",
        "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
        "123456:ABCdefGhIJKlmNoPQRsTUVwxyZ",  # the shape of a token, from an example
    ],
)
def test_a_placeholder_token_is_called_a_placeholder(token: str) -> None:
    with pytest.raises(ConfigError, match="is a placeholder from an example"):
        load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_BOT_TOKEN": token})


@pytest.mark.parametrize("token", ["12345", "7012345678:short", "hello world"])
def test_a_malformed_token_is_refused_with_the_expected_shape(token: str) -> None:
    with pytest.raises(ConfigError, match="does not look like a bot token"):
        load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_BOT_TOKEN": token})


def test_token_written_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, ("[telegram]\n", f'[telegram]\ntoken = "{REAL_LOOKING_TOKEN}"\n'))
    with pytest.raises(ConfigError, match=r"telegram\.token: secrets must not be written"):
        load_settings(path, environ={})


def test_wrong_value_names_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, ('mode = "polling"', 'mode = "carrier-pigeon"'))
    with pytest.raises(
        ConfigError, match=r"telegram\.mode: Input should be 'polling' or 'webhook'"
    ):
        load_settings(path, environ={})


def test_unknown_agency_for_a_domain_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, ('agency = "health-network"', 'agency = "ministry-of-magic"'))
    with pytest.raises(
        ConfigError, match="domain 'health' names unknown agency 'ministry-of-magic'"
    ):
        load_settings(path, environ={})


def test_an_agency_key_too_long_for_a_button_is_refused_in_one_line(tmp_path: Path) -> None:
    """A key over 32 characters would not fit the buttons that carry it (Telegram's 64 bytes of
    callback data): refused at start-up, in one line naming where, not later at a button."""
    long_key = "tehran-district-six-municipality-services"  # 41 characters
    path = write_config(tmp_path, ('key = "municipality"', f'key = "{long_key}"'))
    with pytest.raises(ConfigError, match=r"agencies\.\d+\.key: .*at most 32 characters"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    "parts",
    [
        ("task-to", 9_999_999_999, "a" * KEY_LIMIT),  # ask another agency, on case 9,999,999,999
        ("case-to", 9_999_999_999, "d" * KEY_LIMIT),  # reroute to a domain
        ("sr", 9_999_999_999_999, "a" * KEY_LIMIT),  # remove a clerk of a 13-digit number
        ("agp", 9_999_999_999, "d" * KEY_LIMIT),  # a pattern on the council's agenda
    ],
)
def test_the_longest_key_fits_every_button_that_carries_one(parts: tuple[object, ...]) -> None:
    """Whatever key the config takes, the buttons carrying it stay within 64 bytes."""
    data = Signer("a secret").sign(*parts)
    assert len(data.encode()) <= 64


def test_webhook_mode_needs_a_secret(tmp_path: Path) -> None:
    path = write_config(tmp_path, ('mode = "polling"', 'mode = "webhook"'))
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'webhook_url = ""', 'webhook_url = "https://bot.example.ir/telegram"'
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="MAHALLE_WEBHOOK_SECRET"):
        load_settings(path, environ={})
    secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # 32 characters, the least taken
    settings = load_settings(path, environ={"MAHALLE_WEBHOOK_SECRET": secret})
    assert settings.telegram.webhook_secret is not None
    assert settings.telegram.webhook_secret.get_secret_value() == secret


def test_database_url_from_environment_wins() -> None:
    url = "postgresql+asyncpg://mahalle@db/mahalle"
    assert load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_DATABASE_URL": url}).database.url == url


def test_unreadable_files_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[telegram\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_duplicate_neighbourhood_keys_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, ('key = "d06-jahad"', 'key = "d06-amirabad"'))
    with pytest.raises(
        ConfigError, match="neighbourhood keys must be unique, repeated: d06-amirabad"
    ):
        load_settings(path, environ={})
