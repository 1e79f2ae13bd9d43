"""User-facing errors: every failure says what went wrong, where, and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable


class McbitsError(Exception):
    """An error meant for a person: no traceback needed, the message says it all.

    Args:
        what: what went wrong (expected vs actual where it applies).
        where: the file, stage or parameter concerned.
        remedy: what the user can do about it.
    """

    def __init__(self, what: str, *, where: str | None = None, remedy: str | None = None):
        self.what = what
        self.where = where
        self.remedy = remedy
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"  where: {self.where}")
        if self.remedy:
            parts.append(f"  remedy: {self.remedy}")
        return "\n".join(parts)


def require_keys(present: Iterable[str], wanted: Iterable[str], what: str, *, where: str,
                 remedy: str) -> None:
    """Raise McbitsError("<what> <missing keys>") when any of `wanted` is not in `present`."""
    have = set(present)
    missing = [key for key in wanted if key not in have]
    if missing:
        raise McbitsError(f"{what} {', '.join(missing)}", where=where, remedy=remedy)
