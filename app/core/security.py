"""API keys with two roles. Keys are kept as SHA-256 digests and compared in constant time.

Sources, first match wins: ``CXR_API_KEYS="key:role,key:role"``, the file named by
``CXR_API_KEYS_FILE`` (one ``key:role`` per line), else ``STATE/api_keys.json`` (digests only).
On a first start with none of these, an admin and a predict key are generated, their digests
stored in the state directory, and the keys printed once to stderr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.errors import ConfigurationError, Forbidden, Unauthorized
from app.core.files import write_json_atomic

log = logging.getLogger(__name__)
Role = Literal["predict", "admin"]
ROLES: tuple[Role, ...] = ("predict", "admin")
KEYS_FILE = "api_keys.json"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str  # first 8 hex of the digest: names a key in logs and rate limits without revealing it
    role: Role


class KeyRing:
    def __init__(self, entries: list[tuple[str, Role]]) -> None:
        self._entries = [(bytes.fromhex(d), role) for d, role in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, presented: str | None, need: Role) -> Principal:
        if not presented:
            raise Unauthorized("missing API key: send it in the X-API-Key header or as 'Authorization: Bearer <key>'")
        d = hashlib.sha256(presented.encode("utf-8")).digest()
        match: Role | None = None
        for stored, role in self._entries:  # no early exit: time does not depend on which key matched
            if hmac.compare_digest(stored, d):
                match = role
        if match is None:
            raise Unauthorized("invalid API key")
        if need == "admin" and match != "admin":
            raise Forbidden("this API key's role (predict) does not allow this endpoint; it needs the admin role")
        return Principal(key_id=d.hex()[:8], role=match)


def _parse_pairs(text: str, source: str) -> list[tuple[str, Role]]:
    out: list[tuple[str, Role]] = []
    for raw in text.replace("\n", ",").split(","):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        key, sep, role = item.rpartition(":")
        if not sep or role not in ROLES or len(key) < 16:
            raise ConfigurationError(f"{source}: each entry must be '<key>:<predict|admin>' with a key of at least 16 characters")
        out.append((digest(key), role))  # type: ignore[arg-type]
    if not out:
        raise ConfigurationError(f"{source} holds no keys")
    return out


def load_keyring(api_keys: str | None, api_keys_file: Path | None, state_dir: Path) -> KeyRing:
    if api_keys:
        return KeyRing(_parse_pairs(api_keys, "CXR_API_KEYS"))
    if api_keys_file is not None:
        try:
            return KeyRing(_parse_pairs(Path(api_keys_file).read_text(), str(api_keys_file)))
        except OSError as exc:
            raise ConfigurationError(f"cannot read CXR_API_KEYS_FILE {api_keys_file}: {exc.strerror}") from None
    stored = Path(state_dir) / KEYS_FILE
    if stored.is_file():
        data = json.loads(stored.read_text())
        return KeyRing([(e["sha256"], e["role"]) for e in data["keys"]])
    keys = {role: f"cxr_{role}_{secrets.token_urlsafe(24)}" for role in ROLES}
    stored.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stored, {"keys": [{"sha256": digest(k), "role": r} for r, k in keys.items()]}, mode=0o600)
    print("\n=== cxr: no API keys were configured; generated these (shown once, stored hashed in "
          f"{stored}) ===\n  admin:   {keys['admin']}\n  predict: {keys['predict']}\n"
          "Send one as 'X-API-Key: <key>'. Set CXR_API_KEYS or CXR_API_KEYS_FILE to choose your own.\n",
          file=sys.stderr, flush=True)
    return KeyRing([(digest(k), r) for r, k in keys.items()])
