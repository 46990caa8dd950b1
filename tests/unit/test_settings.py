"""ground.settings: defaults, parsing, errors that name the variable, and the README table."""

import ipaddress
import pathlib
import re

import pytest

from ground import settings as settings_module
from ground.settings import PREFIX
from ground.settings import SETTINGS
from ground.settings import SettingsError
from ground.settings import from_env

README = pathlib.Path(__file__).resolve().parents[2] / "README.rst"


def env(**values):
    return {PREFIX + name.upper(): value for name, value in values.items()}


# --- defaults --------------------------------------------------------------------------

def test_defaults():
    s = from_env({})
    data_dir = pathlib.Path("~/.doo-webhooks").expanduser()
    assert s.data_dir == data_dir
    assert s.database_url == f"sqlite:///{data_dir / 'doo-webhooks.sqlite3'}"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.broker_url == s.database_url  # embedded: the database is the trigger intake
    assert s.secret_keys == ()
    assert s.allowed_networks == ()
    assert s.retry_schedule == (10.0, 60.0, 300.0, 900.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0)
    assert s.retry_jitter == 0.2
    assert s.max_attempts == 10
    assert s.success_statuses == (200,)
    assert (s.connect_timeout, s.read_timeout) == (5.0, 15.0)
    assert s.timeouts == (5.0, 15.0)
    assert s.response_excerpt_bytes == 65536
    assert (s.token_default_ttl, s.token_leeway) == (300, 30)
    assert (s.lease_seconds, s.dispatch_interval) == (60.0, 1.0)
    assert (s.batch_size, s.send_concurrency, s.host_concurrency) == (200, 1000, 100)
    assert (s.origin_api_key, s.origin_token) == ("", "")
    assert s.access_token_ttl == 3600
    assert s.max_body_bytes == 1048576
    assert (s.log_format, s.log_level) == ("auto", "INFO")


def test_defaults_follow_the_design():
    """DESIGN.md §5: 10 attempts, 10 s .. 24 h with ±20 % jitter, only 200, connect 5 s / response 15 s, 64 KiB."""
    s = from_env({})
    assert s.max_attempts == 10
    assert s.retry_schedule == tuple(float(v) for v in settings_module.DEFAULT_RETRY_SCHEDULE)
    assert s.retry_jitter == 0.2
    assert s.success_statuses == (200,)
    assert s.timeouts == (5.0, 15.0)
    assert s.response_excerpt_bytes == 64 * 1024
    assert s.token_default_ttl == 300 and s.token_leeway == 30


def test_types_of_defaults():
    s = from_env({})
    assert all(isinstance(v, float) for v in s.retry_schedule)
    assert all(isinstance(v, int) for v in s.success_statuses)
    for name in ("retry_jitter", "connect_timeout", "read_timeout", "lease_seconds", "dispatch_interval"):
        assert isinstance(getattr(s, name), float), name
    for name in ("max_attempts", "response_excerpt_bytes", "token_default_ttl", "token_leeway", "batch_size",
                 "send_concurrency", "host_concurrency", "access_token_ttl", "max_body_bytes"):
        assert type(getattr(s, name)) is int, name


def test_every_setting_is_a_field():
    fields = {f.name for f in settings_module.dataclasses.fields(settings_module.Settings)}
    assert fields == {s.name.lower() for s in SETTINGS}


def test_reads_only_the_given_mapping(monkeypatch):
    monkeypatch.setenv(PREFIX + "MAX_ATTEMPTS", "3")
    assert from_env({}).max_attempts == 10
    assert from_env().max_attempts == 3  # default: os.environ


def test_unprefixed_variables_are_ignored():
    assert from_env({"MAX_ATTEMPTS": "3", "DATABASE_URL": "postgresql://x/y"}).max_attempts == 10


# --- parsing ---------------------------------------------------------------------------

def test_data_dir_and_database_url(tmp_path):
    s = from_env(env(data_dir=str(tmp_path / "d")))
    assert s.data_dir == tmp_path / "d"
    assert s.database_url == f"sqlite:///{tmp_path / 'd' / 'doo-webhooks.sqlite3'}"
    s = from_env(env(data_dir="~/elsewhere", database_url="postgresql+psycopg2://u@h/db"))
    assert s.data_dir == pathlib.Path.home() / "elsewhere"
    assert s.database_url == "postgresql+psycopg2://u@h/db"


@pytest.mark.parametrize("given", [
    "postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg2://u@h/db", "POSTGRES://u@h/db",
    "postgres+psycopg2://u@h/db",
])
def test_every_postgresql_url_uses_psycopg2(given):
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed."""
    assert from_env(env(database_url=given)).database_url == "postgresql+psycopg2://u@h/db"


def test_sqlite_urls_are_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    assert from_env(env(database_url=url)).database_url == url


@pytest.mark.parametrize("given, says", [
    ("postgresql+psycopg://u@h/db", "the driver for 'postgresql+psycopg' is not installed"),
    ("postgresql+asyncpg://u@h/db", "the driver for 'postgresql+asyncpg' is not installed"),
    ("postgresql+nosuchdriver://u@h/db", "unknown driver"),
    ("mysql://u@h/db", "runs on PostgreSQL"),
    ("ledger.sqlite3", "not a database URL"),
])
def test_a_database_url_that_cannot_work_is_refused_in_one_line(given, says):
    with pytest.raises(SettingsError) as info:
        from_env(env(database_url=given))
    message = str(info.value)
    assert message.startswith(PREFIX + "DATABASE_URL=") and says in message
    assert "\n" not in message


def test_a_refused_database_url_does_not_show_its_password():
    with pytest.raises(SettingsError) as info:
        from_env(env(database_url="postgresql+psycopg://ops:hunter2@h/db"))
    assert "hunter2" not in str(info.value) and "ops:***@h" in str(info.value)


def test_lists_of_numbers():
    s = from_env(env(retry_schedule="1, 2.5,,3 ", success_statuses="200,201, 204,"))
    assert s.retry_schedule == (1.0, 2.5, 3.0)
    assert s.success_statuses == (200, 201, 204)


def test_secret_keys():
    assert from_env(env(secret_keys=" new ,old,, ")).secret_keys == ("new", "old")


def test_networks():
    s = from_env(env(allowed_networks="127.0.0.0/8, 10.1.2.3/8,192.168.1.7,::1, fd00::/8,"))
    assert s.allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.0.0.0/8"),       # host bits dropped, not refused
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert ipaddress.ip_address("10.200.0.1") in s.allowed_networks[1]


def test_floats_and_ints():
    s = from_env(env(retry_jitter="0.5", lease_seconds="1.5", connect_timeout="0.25",
                     read_timeout="1e1", dispatch_interval="0.1", max_attempts="3", batch_size=" 7 ",
                     send_concurrency="50", host_concurrency="4"))
    assert (s.retry_jitter, s.lease_seconds) == (0.5, 1.5)
    assert s.timeouts == (0.25, 10.0)
    assert s.dispatch_interval == 0.1
    assert (s.max_attempts, s.batch_size) == (3, 7)
    assert (s.send_concurrency, s.host_concurrency) == (50, 4)


def test_the_broker_is_redis_once_a_database_is_given():
    s = from_env(env(database_url="postgresql://u@db/ledger"))
    assert s.broker_url == "redis://127.0.0.1:6379/0"
    # a broker given is kept, embedded or not
    assert from_env(env(broker_url="redis://broker:6379/3")).broker_url == "redis://broker:6379/3"
    assert from_env(env(database_url="postgresql://u@db/ledger", broker_url="redis://broker:6379/3")).broker_url == \
        "redis://broker:6379/3"


def test_strings_are_kept():
    s = from_env(env(origin_api_key="k", origin_token="t", log_format="json", log_level="DEBUG",
                     redis_url="memory://", broker_url="redis://broker:6379/3"))
    assert (s.origin_api_key, s.origin_token, s.log_format, s.log_level) == ("k", "t", "json", "DEBUG")
    assert (s.redis_url, s.broker_url) == ("memory://", "redis://broker:6379/3")


def test_settings_are_frozen_and_replaceable():
    s = from_env({})
    with pytest.raises(settings_module.dataclasses.FrozenInstanceError):
        s.max_attempts = 3
    changed = s.replace(max_attempts=3)
    assert (changed.max_attempts, s.max_attempts) == (3, 10)


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("MAX_ATTEMPTS", "ten"),
    ("MAX_ATTEMPTS", "2.5"),
    ("BATCH_SIZE", ""),
    ("SEND_CONCURRENCY", "lots"),
    ("HOST_CONCURRENCY", "many"),
    ("RETRY_JITTER", "abc"),
    ("CONNECT_TIMEOUT", "5s"),
    ("READ_TIMEOUT", ""),
    ("LEASE_SECONDS", "one minute"),
    ("RETRY_SCHEDULE", "10,soon,60"),
    ("SUCCESS_STATUSES", "200,2xx"),
    ("ALLOWED_NETWORKS", "127.0.0.0/8,300.0.0.0/8"),
    ("ALLOWED_NETWORKS", "localhost"),
    ("ALLOWED_NETWORKS", "10.0.0.0/33"),
    ("TOKEN_LEEWAY", "30s"),
    ("MAX_BODY_BYTES", "1MB"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError) as info:
        from_env({PREFIX + name: value})
    message = str(info.value)
    assert PREFIX + name in message
    assert repr(value) in message  # the value that was refused
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["", ",", " , ,"])
def test_empty_retry_schedule_is_refused(value):
    with pytest.raises(SettingsError, match=PREFIX + "RETRY_SCHEDULE"):
        from_env(env(retry_schedule=value))


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_attempts_must_be_positive(value):
    with pytest.raises(SettingsError, match=PREFIX + "MAX_ATTEMPTS"):
        from_env(env(max_attempts=value))
    assert from_env(env(max_attempts="1")).max_attempts == 1


@pytest.mark.parametrize("name", ["BATCH_SIZE", "SEND_CONCURRENCY", "HOST_CONCURRENCY"])
def test_claim_and_send_caps_must_be_positive(name):
    with pytest.raises(SettingsError, match=PREFIX + name):
        from_env({PREFIX + name: "0"})
    assert getattr(from_env({PREFIX + name: "1"}), name.lower()) == 1


def test_the_first_bad_variable_is_named_not_a_later_good_one():
    with pytest.raises(SettingsError) as info:
        from_env(env(max_attempts="x", batch_size="5"))
    assert PREFIX + "MAX_ATTEMPTS" in str(info.value)
    assert PREFIX + "BATCH_SIZE" not in str(info.value)


# --- README.rst ------------------------------------------------------------------------

def readme_settings_table():
    """The rows of README.rst's settings table (an RST simple table) as {variable: (default, meaning)}."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"Variable +Default +Meaning *", line))
    border = lines[start - 1]
    assert re.fullmatch(r"=+( +=+)+", border), "the settings table is a simple RST table"
    columns = [m.span() for m in re.finditer(r"=+", border)]
    rows = {}
    for line in lines[start + 2:]:
        if re.fullmatch(r"=+( +=+)+", line):
            break
        cells = [line[a:(b if i < len(columns) - 1 else None)].strip() for i, (a, b) in enumerate(columns)]
        # only the last column may run past its border
        name = re.fullmatch(r"``([A-Z0-9_]+)``", cells[0])
        assert name, f"not a variable cell: {line!r}"
        rows[name.group(1)] = (cells[1], cells[2])
    return rows


def test_readme_lists_every_setting_with_its_default():
    rows = readme_settings_table()
    for setting in SETTINGS:
        variable = PREFIX + setting.name
        assert variable in rows, f"README.rst's settings table lacks {variable}"
        default, meaning = rows[variable]
        expected = f"``{setting.default}``" if setting.default else "(empty)"
        assert default == expected, f"{variable}: README says {default}, the code {expected}"
        assert " ".join(meaning.split()) == " ".join(setting.meaning.split()), variable


def test_readme_lists_no_setting_that_does_not_exist():
    assert set(readme_settings_table()) == {PREFIX + s.name for s in SETTINGS}


def test_readme_table_is_in_the_order_of_settings():
    assert list(readme_settings_table()) == [PREFIX + s.name for s in SETTINGS]


def test_settings_table_helper_mirrors_settings():
    assert settings_module.settings_table() == [(PREFIX + s.name, s.default, s.meaning) for s in SETTINGS]


def test_every_default_parses():
    for setting in SETTINGS:
        setting.parse(setting.default)
