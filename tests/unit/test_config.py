"""Config: defaults < YAML < environment, validated, secrets from the environment only."""

import pytest

from services.gateway.config import GatewayConfig
from services.intake.config import IntakeConfig
from shared.config import DEFAULT_CONFIG_FILE, REPO_ROOT, ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "hcrm.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_yaml_common_yaml_service_env(tmp_path):
    path = write(
        tmp_path, "common:\n  log_level: WARNING\n  max_workers: 4\nintake:\n  max_workers: 6\n"
    )
    config = load_config("intake", IntakeConfig, env={"INTAKE_RECOVERING_DAYS": "45"}, path=path)
    assert (config["log_level"], config["max_workers"], config["recovering_days"]) == (
        "WARNING",
        6,
        45,
    )
    config = load_config("intake", IntakeConfig, env={"HCRM_MAX_WORKERS": "8"}, path=path)
    assert config["max_workers"] == 8


@pytest.mark.parametrize(
    "env,key",
    [
        ({"INTAKE_METRICS_PORT": "ninety"}, "intake.metrics_port"),
        ({"HCRM_TIMEZONE": "Mars/Olympus"}, "intake.timezone"),
        ({"HCRM_AMQP_URI": "http://rabbit"}, "intake.amqp_uri"),
        ({"HCRM_RETRY_DELAYS_MS": "1000,x"}, "intake.retry_delays_ms"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_key(tmp_path, env, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("intake", IntakeConfig, env=env, path=write(tmp_path, "{}"))


def test_secrets_in_the_yaml_file_are_refused(tmp_path):
    path = write(tmp_path, "gateway:\n  jwt_secret: " + "s" * 40 + "\n")
    with pytest.raises(ConfigError, match="environment only"):
        load_config("gateway", GatewayConfig, env={}, path=path)


def test_the_gateway_needs_a_long_jwt_secret(tmp_path):
    with pytest.raises(ConfigError, match=r"gateway\.jwt_secret"):
        load_config(
            "gateway", GatewayConfig, env={"HCRM_JWT_SECRET": "short"}, path=write(tmp_path, "{}")
        )


def test_the_shipped_defaults_are_valid():
    config = load_config("intake", IntakeConfig, env={})
    assert config["retry_delays_ms"] == [1000, 5000, 15000, 60000]


def test_an_invalid_yaml_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("intake", IntakeConfig, env={}, path=write(tmp_path, "common: [unclosed"))


def test_without_hcrm_config_the_projects_deploy_config_file_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # any working directory: resolved from the code, not the cwd
    assert DEFAULT_CONFIG_FILE == REPO_ROOT / "deploy" / "config" / "hcrm.yaml"
    assert DEFAULT_CONFIG_FILE.is_file()
    config = load_config("intake", IntakeConfig, env={})
    assert config["metrics_port"] == 9101  # the file's intake: section (the schema says 0)
    assert config == load_config(
        "intake", IntakeConfig, env={"HCRM_CONFIG": str(DEFAULT_CONFIG_FILE)}
    )
    other = write(tmp_path, "common:\n  log_level: ERROR\n")
    assert (
        load_config("intake", IntakeConfig, env={"HCRM_CONFIG": str(other)})["log_level"] == "ERROR"
    )
