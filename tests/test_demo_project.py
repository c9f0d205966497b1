import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_demo_settings_boot_with_no_service(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            "print(settings.DATABASES['default']['ENGINE'], settings.RATELIMIT_APP['BACKEND'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.split() == [
        "django.db.backends.sqlite3",
        "ratelimit_app.counters.memory.MemoryBackend",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method,path,status",
    [
        ("get", "/v1/status", 200),
        ("get", "/v1/messages", 200),
        ("post", "/v1/messages", 201),
        ("post", "/v1/media", 201),
        ("post", "/v1/licenses/validate", 201),
        ("post", "/v1/licenses/activate", 201),
        ("post", "/test", 201),
        ("get", "/acp/admin/ping", 200),
        ("get", "/hello", 200),
        ("get", "/admin/login/", 200),
    ],
)
def test_demo_endpoints_answer(client, method, path, status):
    assert getattr(client, method)(path).status_code == status


@pytest.mark.django_db
def test_token_endpoint_accepts_form_json_and_basic(client):
    import base64
    import json

    ok = client.post("/connect/token", {"client_id": "demo-client", "client_secret": "demo-secret"})
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
    as_json = client.post(
        "/connect/token",
        json.dumps({"client_id": "demo-client", "client_secret": "demo-secret"}),
        content_type="application/json",
    )
    assert as_json.status_code == 200
    basic = base64.b64encode(b"demo-client:demo-secret").decode()
    assert client.post("/connect/token", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 200
    bad = client.post("/connect/token", {"client_id": "demo-client", "client_secret": "no"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    broken = client.post("/connect/token", "{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_request"
