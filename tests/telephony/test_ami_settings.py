"""The [asterisk] settings: the shipped file loads, and every mistake names its file or variable and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaign.errors import ConfigError
from campaign.policy import DEFAULT_CONFIG_DIR
from dialer.backends.asterisk.backend import number_forms
from dialer.backends.asterisk.settings import load_asterisk_settings

ENV = {"CARECALL_AMI_USER": "dialer", "CARECALL_AMI_SECRET": "s3cret-value"}


def config_with(tmp_path: Path, replace: tuple[str, str] | None = None, extra: str = "") -> Path:
    shutil.copy(DEFAULT_CONFIG_DIR / "telephony.toml", tmp_path / "telephony.toml")
    path = tmp_path / "telephony.toml"
    text = path.read_text(encoding="utf-8")
    if replace is not None:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1])
    path.write_text(text + extra, encoding="utf-8")
    return tmp_path


def test_the_shipped_file_loads_with_the_environments_user_and_secret() -> None:
    settings = load_asterisk_settings(environ=ENV)
    assert settings.username == "dialer"
    assert settings.secret.get_secret_value() == "s3cret-value"
    assert settings.events == "call,user"
    assert settings.patient_context == "patient-amd"
    assert "s3cret-value" not in repr(settings)


@pytest.mark.parametrize("missing", ["CARECALL_AMI_USER", "CARECALL_AMI_SECRET"])
def test_a_missing_credential_names_its_variable(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(ConfigError) as err:
        load_asterisk_settings(environ=env)
    assert err.value.file == "environment" and err.value.key == missing


WRONG = [
    # (what the file says instead, the key named, a word of the problem)
    (('events = "call,user"', 'events = "call"'), "events", "verdict"),
    (('events = "call,user"', 'events = "user"'), "events", "calls"),
    (("port = 5038", "port = 70000"), "port", "65535"),
    (('nurse_channel = "PJSIP/{endpoint}"', 'nurse_channel = "PJSIP/{phone}"'), "nurse_channel", "{phone}"),
    (('"PJSIP/{number}@trunk"', '"PJSIP/t"'), "patient_channel", "{number}"),
    (("_backoff_max_seconds = 30", "_backoff_max_seconds = 0.1"), "reconnect_backoff_max_seconds", "below"),
    (("audit_interval_seconds = 60", "audit_seconds = 60"), "audit_seconds", "unknown key"),
]


@pytest.mark.parametrize(("replace", "key", "words"), WRONG)
def test_a_wrong_key_is_named_with_its_problem(
    tmp_path: Path, replace: tuple[str, str], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_asterisk_settings(config_with(tmp_path, replace), environ=ENV)
    assert err.value.file.endswith("telephony.toml")
    assert err.value.key == f"asterisk.{key}"
    assert words in err.value.problem


def test_a_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_asterisk_settings(
            config_with(tmp_path, ("[asterisk]\n", '[asterisk]\nsecret = "x"\n')), environ=ENV
        )
    assert err.value.key == "asterisk.secret"


def test_no_asterisk_table_is_named(tmp_path: Path) -> None:
    (tmp_path / "telephony.toml").write_text("[twilio]\naccount = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_asterisk_settings(tmp_path, environ=ENV)
    assert err.value.key == "asterisk"


@pytest.mark.parametrize(
    ("e164", "national", "digits"),
    [
        ("+33199001234", "0199001234", "33199001234"),
        # La Réunion: dialed as a French number (no fiction range overseas: one outside its numbering plan)
        ("+262261910001", "0261910001", "262261910001"),
        ("+447700900123", "00447700900123", "447700900123"),  # Ofcom's range for drama
    ],
)
def test_a_patient_channel_names_the_number_as_the_trunk_wants_it(
    e164: str, national: str, digits: str
) -> None:
    assert number_forms(e164) == {"number": e164, "national": national, "digits": digits}
