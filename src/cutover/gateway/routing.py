"""Sticky arm assignment: which arm (baseline or candidate) serves a request.

Pure: no I/O. A sticky key (a user id, a session header, an API key) is
hashed with the route alias (BLAKE2b, 64 bits) onto ``[0, 100)``; the key goes
to the candidate when its point is below the weight. So:

- the same key always gets the same arm, in every process and replica;
- over many keys the candidate's share is the weight (fractions allowed);
- raising the weight only adds keys to the candidate (``point < weight`` is
  monotone): nobody on the candidate is moved back by a ramp-up;
- each route hashes differently, so one user is not on the candidate of
  every route at once.

Keys in the allow-list are pinned to the candidate whatever the weight. With
no key the arm is drawn per request.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from enum import StrEnum

_SCALE = 100.0 / float(1 << 64)


class Arm(StrEnum):
    """The two arms of a route."""

    BASELINE = "baseline"
    CANDIDATE = "candidate"


@dataclass(frozen=True, slots=True)
class Assignment:
    """The arm chosen, and the sticky key's hash (for the log; ``None`` without a key)."""

    arm: Arm
    key_hash: str | None


def sticky_point(alias: str, key: str) -> tuple[float, str]:
    """The key's point in ``[0, 100)`` for this route, and its hex hash."""
    digest = hashlib.blake2b(
        key.encode("utf-8"), digest_size=8, key=alias.encode("utf-8")[:64]
    ).digest()
    return int.from_bytes(digest, "big") * _SCALE, digest.hex()


def assign(
    alias: str,
    key: str | None,
    *,
    weight: float,
    has_candidate: bool = True,
    allow: Container[str] = (),
    rng: random.Random | None = None,
) -> Assignment:
    """The arm for one request on route ``alias`` with sticky ``key``."""
    if key is None:
        if not has_candidate or weight <= 0:
            return Assignment(Arm.BASELINE, None)
        draw = (rng or random).random() * 100.0
        return Assignment(Arm.CANDIDATE if draw < weight else Arm.BASELINE, None)
    point, key_hash = sticky_point(alias, key)
    if not has_candidate:
        return Assignment(Arm.BASELINE, key_hash)
    if key in allow or point < weight:
        return Assignment(Arm.CANDIDATE, key_hash)
    return Assignment(Arm.BASELINE, key_hash)


SLICE_HEADER = "x-cutover-slice"
"""The request header that labels a request's slice (e.g. ``medical``) for per-slice gates."""
_SLICE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def slice_label(headers: Mapping[str, str]) -> str | None:
    """The request's slice label (header ``x-cutover-slice``), ``None`` without one.

    Raises :class:`ValueError` (the message names the header and what is valid)
    for a label a rollout plan could not name.
    """
    raw = headers.get(SLICE_HEADER)
    if raw is None:
        return None
    label = raw.strip()
    if not _SLICE_LABEL.fullmatch(label):
        raise ValueError(
            f"header {SLICE_HEADER} is {raw[:80]!r}; a slice label is 1-64 characters: "
            "letters, digits and _ . : - (starting with a letter or digit)"
        )
    return label


__all__ = ["SLICE_HEADER", "Arm", "Assignment", "assign", "slice_label", "sticky_point"]
