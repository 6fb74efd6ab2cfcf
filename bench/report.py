"""The one table the bench prints, and its JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    value: float | None
    unit: str
    ratio: float | None  # to the ceiling, where one applies
    target: float | None
    sense: str | None  # ">=" or "<="
    notes: str

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value >= self.target if self.sense == ">=" else self.value <= self.target

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "value": self.value, "unit": self.unit,
                "ratio_to_ceiling": self.ratio, "target": self.target, "target_sense": self.sense,
                "met": self.met, "notes": self.notes}


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def render(rows: list[Row], document: dict[str, Any]) -> str:
    head = ("measure", "value", "unit", "x ceiling", "target", "met", "notes")
    body = []
    for row in rows:
        target = "" if row.target is None else f"{row.sense} {_number(row.target)}"
        met = {True: "yes", False: "NO", None: ""}[row.met]
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        body.append((row.label, _number(row.value), row.unit, ratio, target, met, row.notes))
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in (1, 3) else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    m = document["machine"]
    out = [
        f"metering bench ({document['mode']}) on {m['nproc']} cores, {m['ram_gib']} GiB, {m['cpu_model']}"
        f" - {document['wall_seconds']:.0f} s",
        line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in body),
    ]
    errors = document["details"].get("errors")
    if errors:
        out.append(f"errors: {errors}")
    return "\n".join(out)


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
