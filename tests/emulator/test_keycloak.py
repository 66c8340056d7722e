"""Keycloak twin, driven by the unmodified cmsdials AuthClient and plain requests."""

from __future__ import annotations

import base64

import orjson
import pytest
import requests
from cmsdials.auth.client import AuthClient
from cmsdials.auth.client_credentials import Credentials as ClientCredentials
from cmsdials.auth.device import Credentials as DeviceCredentials

from dialsflow_emulator.process import EmulatorProcess


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _client(emulator: EmulatorProcess) -> tuple[str, str]:
    conn = emulator.connections()["dials_default"]
    return conn["login"], conn["password"]


def test_api_access_token_is_a_jwt_for_the_requested_audience(emulator):
    client_id, secret = _client(emulator)
    r = requests.post(f"{emulator.url}/auth/realms/cern/api-access/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "audience": "cmsoms-prod"}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1200
    assert body["access_token"].count(".") == 2
    claims = _claims(body["access_token"])
    assert claims["aud"] == "cmsoms-prod"
    assert claims["azp"] == client_id
    assert claims["sub"] == f"service-account-{client_id}"


@pytest.mark.parametrize("client_id,secret", [("dialsflow-emulator", "wrong"), ("nobody", "x")])
def test_wrong_or_unknown_client_is_invalid_client(emulator, client_id, secret):
    r = requests.post(f"{emulator.url}/auth/realms/cern/api-access/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "audience": "cms-dials-prod-confidential-app"}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_unknown_audience_is_refused(emulator):
    client_id, secret = _client(emulator)
    r = requests.post(f"{emulator.url}/auth/realms/cern/api-access/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "audience": "some-other-app"}, timeout=10)
    assert r.status_code == 400


def test_cmsdials_client_credentials_get_the_dials_audience(emulator):
    client_id, secret = _client(emulator)
    creds = ClientCredentials(client_id, secret,
                              client=AuthClient(keycloak_url=emulator.url + "/auth/"))
    assert _claims(creds.token)["aud"] == "cms-dials-prod-confidential-app"
    with pytest.raises(requests.HTTPError) as err:
        # keycloak_url without the trailing slash works too, as cmsdials appends it
        ClientCredentials(client_id, "wrong",
                          client=AuthClient(keycloak_url=emulator.url + "/auth"))
    assert err.value.response.status_code == 401


def test_device_flow_exchange_and_refresh_with_production_client_ids(emulator, tmp_path):
    auth = AuthClient(keycloak_url=emulator.url + "/auth/")
    device = auth.new_device()  # public client cms-dials-prod-public-app, auto-approved
    token = auth.device_token(device.device_code)
    assert _claims(token.access_token)["aud"] == "cms-dials-prod-confidential-app"
    assert token.refresh_expires_in > 0
    creds = DeviceCredentials.from_authclient_token(token, cache_dir=str(tmp_path), client=auth)
    assert (tmp_path / "creds").exists()
    old = creds.token
    creds.refresh()
    assert creds.token != old
    assert _claims(creds.token)["aud"] == "cms-dials-prod-confidential-app"
    # A used device code is gone, as in Keycloak.
    again = requests.post(auth.token_url, data={
        "client_id": auth.client_id, "device_code": device.device_code,
        "grant_type": AuthClient.DEVICE_CODE_GRANT}, timeout=10)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_invalid_refresh_token_is_invalid_grant(emulator):
    r = requests.post(f"{emulator.url}/auth/realms/cern/protocol/openid-connect/token", data={
        "client_id": "cms-dials-prod-public-app", "grant_type": "refresh_token",
        "refresh_token": "garbage"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_device_auth_flow_needs_no_human():
    """The whole interactive flow of cmsdials completes (it polls after its 5 s interval)."""
    with EmulatorProcess("--token-ttl", "60") as emu:
        token = AuthClient(keycloak_url=emu.url + "/auth/").device_auth_flow()
        assert token.token_type == "Bearer"
        assert _claims(token.access_token)["exp"] - _claims(token.access_token)["iat"] == 60
