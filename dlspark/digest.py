"""Short content hashes: the fingerprints in manifests, reports and model versions."""

from __future__ import annotations

import hashlib


def short_hash(data: bytes | str) -> str:
    """The first 16 hex digits of the SHA-256 of `data` (text is hashed as UTF-8)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:16]
