"""Password hashes in RabbitMQ's format (rabbit_password_hashing_*).

A hash is ``base64(salt + H(salt + utf8(password)))`` with a 4-byte random salt, H being
SHA-256 by default, so a ``password_hash`` exported from RabbitMQ's definitions checks
here and one made here imports into RabbitMQ.  SHA-512 and MD5 hashes (older RabbitMQ
exports) are checked too; new hashes are always SHA-256, as RabbitMQ 3.6+ writes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any, Final

SHA256: Final = "rabbit_password_hashing_sha256"
ALGORITHMS: Final[dict[str, Callable[..., Any]]] = {
    SHA256: hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
# RabbitMQ's salt size (rabbit_password:generate_salt/0).
SALT_SIZE: Final = 4
# Checked when the user does not exist or has no usable hash, so that a refused login
# takes as long whether or not the name is known (no user enumeration by timing).
_DUMMY_HASH: Final = base64.b64encode(b"\x00" * SALT_SIZE + hashlib.sha256(b"").digest()).decode()


def hash_password(password: str, *, salt: bytes | None = None, algorithm: str = SHA256) -> str:
    """The ``password_hash`` RabbitMQ would store for ``password``."""
    if salt is None:
        salt = os.urandom(SALT_SIZE)
    digest = ALGORITHMS[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def check_password(password_hash: str, password: str, algorithm: str = SHA256) -> bool:
    """Whether ``password`` matches ``password_hash``, in time independent of where they
    differ.  An empty hash (a user without a password, as RabbitMQ allows) or one that
    does not decode never matches."""
    hasher = ALGORITHMS.get(algorithm)
    raw = _decode(password_hash) if hasher is not None else None
    usable = raw is not None and len(raw) > SALT_SIZE
    if not usable or hasher is None or raw is None:
        # Same amount of work as a real check, then refuse.
        raw, hasher = base64.b64decode(_DUMMY_HASH), hashlib.sha256
    salt, expected = raw[:SALT_SIZE], raw[SALT_SIZE:]
    actual = hasher(salt + password.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(actual, expected) and usable


def valid_hash(password_hash: str, algorithm: str) -> bool:
    """Whether an imported hash can ever match: a known algorithm and a digest of its size."""
    hasher = ALGORITHMS.get(algorithm)
    raw = _decode(password_hash)
    return hasher is not None and raw is not None and len(raw) == SALT_SIZE + hasher().digest_size


def _decode(password_hash: str) -> bytes | None:
    if not password_hash:
        return None
    try:
        return base64.b64decode(password_hash, validate=True)
    except (binascii.Error, ValueError):
        return None
