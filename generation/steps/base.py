"""The step contract: one small class per step; the runner (:mod:`generation.run.runner`) does the rest.

Rows are dicts of named fields that flow through a declared list of steps. A step reads the fields it
``needs`` and adds its ``outputs``.

An **LLM step** (:class:`LLMStep`, in the spirit of distilabel's Task) declares, for one row:

- ``messages(row, attempt, sample)``: the chat to send; ``seed(row, attempt, sample)``: the request seed;
  ``sampling``, ``max_attempts`` and ``samples`` (k requests per row);
- ``parse(reply, row)``: the fields a reply gives, or a :class:`Reject` with a reason (retried at once while
  attempts are left);
- optionally ``check(fields, row)``: a check that needs fields other (earlier) steps produce
  (``check_needs``). The runner may send this step's requests before those fields exist (when its
  ``needs`` are met) and runs the check once they are there; a failing candidate is retried at once;
- optionally ``commit(fields, row)`` with ``ordered = True``: called in row order, for decisions that depend
  on earlier rows (near-duplicates); a Reject is retried like any other;
- optionally ``combine(row, samples)``: with ``samples > 1``, a selection over the accepted samples (best of
  k, agreement) giving the step's fields or a Reject.

A **row step** (:class:`RowStep`) is a plain function of a row (filter, scoring, length control), optionally
``ordered``. The runner owns the row window, concurrency (kept at the client's capacity), retries, PII
scrubbing of replies (``scrub_replies``; the judge opts out), progress, per-step stats and dropped rows.
Adding an LLM step is one new class like those in this package plus its prompts in config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generation.steps.common import DroppedRow

if TYPE_CHECKING:
    from generation.backends.client import ChatResult
    from generation.config import SamplingConfig

Fields = dict[str, Any]


@dataclass(frozen=True)
class Reject:
    """Why a reply (or a row, for a row step) was not accepted; ``reason`` is a short code, ``detail`` free text."""

    reason: str
    detail: str = ""


@dataclass
class Reply:
    """One model reply as a step sees it: ``text`` is already PII-scrubbed unless the step opts out."""

    text: str
    result: ChatResult
    attempt: int
    sample: int
    seed: int | None


class Row:
    """One row flowing through the steps: its position in the input (``index``) and its fields.

    Steps read fields (``row["question"]``, ``row.get(...)``) and never change them; the runner adds what
    steps return. After the runner is done with a row it sets ``failed`` (the name of the step that gave up,
    or None) and ``dropped`` (the rejected candidates, in step and attempt order).
    """

    __slots__ = ("index", "fields", "failed", "failed_reason", "dropped", "_state")

    def __init__(self, fields: Fields, index: int = -1):
        self.index = index
        self.fields = fields
        self.failed: str | None = None
        self.failed_reason: str | None = None
        self.dropped: list[DroppedRow] = []
        self._state: Any = None

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __repr__(self) -> str:
        return f"Row({self.index}, {sorted(self.fields)})"


class Step:
    """What every step declares: a name (stats, request accounting), the ``stage`` label of its dropped rows,
    the fields it needs before it can start and the fields it adds."""

    name: str = ""
    stage: str = ""
    needs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    ordered: bool = False

    def applies(self, row: Row) -> bool:
        """Whether this row goes through the step at all (e.g. seed questions skip the rewrite step)."""
        return True

    def extra_stats(self) -> dict[str, Any]:
        """Figures the step measures itself (e.g. time in near-duplicate checks), added to its stats."""
        return {}


class RowStep(Step):
    """A plain step: ``process`` returns the fields to add, or a Reject that drops the row."""

    def process(self, row: Row) -> Fields | Reject:
        raise NotImplementedError

    def dropped(self, row: Row, reject: Reject) -> DroppedRow:
        """The ``dropped.csv`` record of a row this step dropped."""
        return DroppedRow(self.stage or self.name, reject.reason, "", str(row.get("question", "")), str(row.get("modification", "")), 0, reject.detail)


class LLMStep(Step):
    """A step that asks the model; see the module docstring for the contract."""

    sampling: SamplingConfig
    max_attempts: int = 1
    samples: int = 1
    scrub_replies: bool = True
    check_needs: tuple[str, ...] = ()
    reason_prefix: str = ""  # prefixed to reject reasons in dropped.csv and stats, e.g. "chosen_"

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        raise NotImplementedError

    def seed(self, row: Row, attempt: int, sample: int) -> int | None:
        return None

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        raise NotImplementedError

    def check(self, fields: Fields, row: Row) -> Reject | None:
        """Compare a parsed candidate with fields of earlier steps (``check_needs``); None accepts it."""
        return None

    def commit(self, fields: Fields, row: Row) -> Reject | None:
        """Called in row order when ``ordered`` (after parse and check); None accepts the candidate."""
        return None

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        """The step's fields from its accepted samples (None where a sample gave up); default: the first one."""
        for fields in samples:
            if fields is not None:
                return fields
        return Reject("no_sample")

    def dropped(self, row: Row, reply: Reply, reject: Reject) -> DroppedRow:
        """The ``dropped.csv`` record of a rejected candidate."""
        return DroppedRow(
            self.stage or self.name, self.reason_prefix + reject.reason, reply.text.strip(), str(row.get("question", "")),
            str(row.get("modification", "")), reply.attempt + 1, reject.detail,
        )  # fmt: skip


def result_meta(reply: Reply) -> Mapping[str, Any]:
    """Provenance of one accepted reply: model, backend, endpoint and seed."""
    result = reply.result
    return {"model": result.model, "backend": result.backend, "endpoint": result.endpoint, "seed": reply.seed}
