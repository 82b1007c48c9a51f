"""A wrapper that keeps secrets out of reprs, logs and messages."""

from __future__ import annotations

__all__ = ["Secret", "redact"]


class Secret:
    """A string that prints as `***`; `.value` gives it out, on purpose only."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @property
    def value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact(text: str, *secrets: Secret | None) -> str:
    """`text` with every secret's value replaced by `***`."""
    for secret in secrets:
        if secret and len(secret.value) >= 4:
            text = text.replace(secret.value, "***")
    return text
