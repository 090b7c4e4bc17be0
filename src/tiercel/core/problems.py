"""Expected failures as values: a problem names the field, the value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass

MISSING = object()  # the value of a Problem about a field that was not given


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    value: object
    allowed: str

    def message(self) -> str:
        if self.value is MISSING:
            return f"{self.field}: {self.allowed}"
        shown = repr(self.value) if isinstance(self.value, str) else str(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.field}: {shown} {self.allowed}"


@dataclass(frozen=True, slots=True)
class Refusal(Problem):
    """A problem another system reported (a batch system refusing a command), not the request's own."""


class SetupError(Exception):
    """Configuration or state that keeps the manager from starting; the message is one line for the user."""
