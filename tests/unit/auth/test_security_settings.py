"""Security and limit settings map from flags, environment and TOML, and half a TLS setup is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqd import settings


def test_security_settings_from_the_environment_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "jobqd.toml"
    cfg.write_text('[limits]\nmax_streams_per_identity = 7\n[auth]\nmode = "required"\n')
    s = settings.load(
        {"max_inflight_submits": 5},
        environ={"JOBQD_TLS_CERT": "c.pem", "JOBQD_TLS_KEY": "k.pem", "JOBQD_METRICS_LISTEN": "[::1]:9464"},
        config_file=cfg,
    )
    assert (s.server.tls_cert, s.server.tls_key, s.server.tls_client_ca) == ("c.pem", "k.pem", "")
    assert s.server.metrics_listen == "[::1]:9464"
    assert s.limits.max_inflight_submits == 5 and s.limits.max_streams_per_identity == 7
    assert s.auth.mode == "required"


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"tls_cert": "c.pem"}, "--tls-cert and --tls-key"),
        ({"tls_key": "k.pem"}, "--tls-cert and --tls-key"),
        ({"tls_client_ca": "ca.pem"}, "--tls-client-ca needs --tls-cert"),
        ({"metrics_listen": "9464"}, "not HOST:PORT"),
        ({"auth": "off"}, "must be one of auto, required"),
        ({"max_streams_per_identity": 0}, "must be >= 1"),
    ],
)
def test_inconsistent_security_settings_are_refused(flags: dict[str, object], problem: str) -> None:
    with pytest.raises(settings.SettingsError, match=problem):
        settings.load(flags, environ={})
