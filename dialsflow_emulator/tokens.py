"""JWT-shaped access tokens, issued by the Keycloak twin and checked by DIALS and OMS.

Signed with HS256 and a key derived from the seed, so tokens survive an emulator restart
with the same seed (as realm keys survive a Keycloak restart). Expiry uses wall-clock time,
not the world clock: token lifetimes are about the client, not about the data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import orjson


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    """Why a token was refused; `code` follows the DIALS error codes (docs/reference/dials.md
    §1)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class TokenSigner:
    issuer: str
    key: bytes

    @classmethod
    def for_seed(cls, seed: int, issuer: str) -> TokenSigner:
        return cls(issuer, hashlib.sha256(f"dialsflow-emulator-realm-key:{seed}".encode()).digest())

    def issue(self, *, audience: str, azp: str, subject: str, ttl: int, kind: str = "Bearer",
              roles: tuple[str, ...] = (), claims: dict | None = None) -> str:
        """A signed token; `claims` adds to (never replaces) the standard ones."""
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT", "kid": "emulator"}
        payload = {
            **(claims or {}),
            "exp": now + ttl, "iat": now, "jti": str(uuid.uuid4()), "iss": self.issuer,
            "aud": audience, "sub": subject, "typ": kind, "azp": azp,
            "cern_roles": list(roles),
        }
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
        sig = hmac.new(self.key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(sig)}"

    def verify(self, token: str, audience: str | None, kind: str = "Bearer") -> dict:
        """Return the claims, or raise TokenError in the order DIALS checks them."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("token_not_valid", "Token is invalid or expired")
        try:
            claims = orjson.loads(_unb64(parts[1]))
            if not isinstance(claims, dict):
                raise ValueError("claims are not an object")
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise TokenError("token_not_valid", "Token is invalid or expired") from exc
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature_ok = hmac.compare_digest(expected, _unb64(parts[2]))
        except ValueError:
            signature_ok = False
        if not signature_ok:
            raise TokenError("access_token_invalid_jws_signature",
                             "Access token has an invalid JWS signature.")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            raise TokenError("access_token_expired", "Access token has expired.")
        if claims.get("typ", "Bearer") != kind:
            raise TokenError("access_token_unexpected_error", "Unexpected error validating token.")
        if audience is not None and claims.get("aud") != audience:
            raise TokenError("access_token_unexpected_error", "Unexpected error validating token.")
        return claims
