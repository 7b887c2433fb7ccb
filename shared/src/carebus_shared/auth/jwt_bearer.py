"""OAuth2 bearer JWTs, checked against the configured JWKS with PyJWT (docs/decisions/023).

Signature (asymmetric algorithms only: the JWKS holds public keys), issuer, audience and
expiry are all required. The client is ``client_id`` (else ``azp``, else ``sub``); its
scopes are ``scope`` (space-separated, RFC 8693/9068) or ``scp`` (a list).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import jwt
from jwt import PyJWKClient

from carebus_shared.auth.principal import Principal

ALGORITHMS: Final = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
LEEWAY_S: Final = 30


class InvalidToken(Exception):
    """Why a token was refused, naming the check (never the token)."""


class JwksUnavailable(ConnectionError):
    """The JWKS could not be fetched: a dependency failed (503), not the caller."""


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2


class JwtVerifier:
    def __init__(self, jwks_url: str, issuer: str, audience: str, cache_s: float) -> None:
        self._issuer, self._audience = issuer, audience
        # Keys are cached for cache_s; an unknown "kid" refetches the set (rotation).
        self._jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=int(max(cache_s, 1)))

    def _verify(self, token: str) -> Principal:
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise JwksUnavailable("the JWKS is unreachable") from exc
        except jwt.PyJWKClientError as exc:
            raise InvalidToken("no key of the JWKS signed this token") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("not a JWT") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token, signing_key.key, algorithms=ALGORITHMS, audience=self._audience,
                issuer=self._issuer, leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token failed a check ({type(exc).__name__})") from exc
        name = claims.get("client_id") or claims.get("azp") or claims.get("sub")
        if not isinstance(name, str) or not name:
            raise InvalidToken("the token names no client (client_id, azp or sub)")
        scope = claims.get("scope", "")
        scopes = scope.split() if isinstance(scope, str) else []
        scp = claims.get("scp", [])
        scopes += [s for s in scp if isinstance(s, str)] if isinstance(scp, list) else []
        return Principal(name[:200], frozenset(scopes), "jwt")

    async def verify(self, token: str) -> Principal:
        # PyJWKClient fetches with urllib (blocking): off the event loop.
        return await asyncio.to_thread(self._verify, token)
