"""Episodic evaluation with per-query predictions, and the Markdown/HTML report."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io._write import atomic_output
from ..model_selection import evaluate_episodes

__all__ = ["EpisodicEvaluation", "at_chance", "episodic_evaluation", "write_report"]


@dataclass
class EpisodicEvaluation:
    """N-way K-shot results with a confusion matrix over all episodes.

    ``mean``, ``ci95``, ``accuracies`` and ``seeds`` equal those of
    :func:`fscc_sklearn.evaluate_episodes` with the same arguments.
    """

    n_way: int
    k_shot: int
    n_query: int
    mean: float
    ci95: float
    accuracies: np.ndarray
    seeds: np.ndarray
    classes: np.ndarray
    confusion: np.ndarray
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "n_query": self.n_query,
            "n_episodes": len(self.accuracies),
            "mean": self.mean,
            "ci95": self.ci95,
            "accuracies": self.accuracies.tolist(),
            "seeds": self.seeds.tolist(),
            "classes": [str(c) for c in self.classes],
            "confusion": self.confusion.tolist(),
            "chance": 1 / self.n_way,
            "at_chance": at_chance(self),
            **self.extra,
        }


def at_chance(evaluation: EpisodicEvaluation) -> bool:
    """Whether the accuracy's 95% confidence interval includes chance (1 / N)."""
    ci = 0.0 if np.isnan(evaluation.ci95) else evaluation.ci95
    return bool(evaluation.mean - ci <= 1 / evaluation.n_way)


def chance_warnings(evaluations: list[EpisodicEvaluation]) -> list[str]:
    """One sentence per setting whose accuracy cannot be told from chance."""
    return [
        f"{e.n_way}-way {e.k_shot}-shot accuracy {e.mean:.3f} ± {e.ci95:.3f} is at "
        f"chance ({1 / e.n_way:.3f}): its 95% confidence interval includes chance, "
        "so the model does not separate these classes"
        for e in evaluations
        if at_chance(e)
    ]


def episodic_evaluation(
    classifier,
    F: np.ndarray,
    y: np.ndarray,
    *,
    n_way: int,
    k_shot: int,
    n_query: int,
    n_episodes: int,
    random_state: int | None,
    n_jobs: int | None = None,
    progress=None,
) -> EpisodicEvaluation:
    """:func:`fscc_sklearn.evaluate_episodes` on features ``F``, with the
    confusion matrix of every query's prediction over all episodes.

    ``progress.update(1)`` is called per episode.
    """
    result = evaluate_episodes(
        classifier,
        F,
        y,
        n_way=n_way,
        k_shot=k_shot,
        n_query=n_query,
        n_episodes=n_episodes,
        random_state=random_state,
        n_jobs=n_jobs,
        return_predictions=True,
        progress=progress,
    )
    y = np.asarray(y)
    classes = np.unique(y)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for query, pred in zip(result.queries, result.predictions, strict=True):
        truth = np.searchsorted(classes, y[query])
        np.add.at(confusion, (truth, np.searchsorted(classes, pred)), 1)
    return EpisodicEvaluation(
        n_way,
        k_shot,
        n_query,
        result.mean,
        result.ci95,
        result.accuracies,
        result.seeds,
        classes,
        confusion,
    )


# Markdown punctuation that could start markup (emphasis, links, tables, code,
# math on GitHub); < > & become HTML entities, so no raw HTML gets through
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~$"})


def markdown_text(value) -> str:
    """``value`` as literal Markdown text on one line: class names and paths are
    shown as they are, never read as markup or HTML."""
    text = " ".join(str(value).split())
    return html.escape(text, quote=False).translate(_MD_SPECIAL)


def write_report(
    folder: str | os.PathLike,
    title: str,
    facts: dict,
    evaluations: list[EpisodicEvaluation],
    plots: dict[str, str],
    *,
    notes: list[str] = (),
    overwrite: bool = False,
) -> tuple[Path, Path, Path]:
    """Write ``report.md``, ``report.html`` and ``results.json`` into ``folder``.

    Parameters
    ----------
    folder : path
        Existing output folder (the plots are expected there).
    title : str
    facts : dict
        Settings to list (model, data, seed, timings...).
    evaluations : list of EpisodicEvaluation
    plots : dict
        ``{caption: file name relative to folder}``.
    notes : list of str, default=()
        Sentences shown under the results (e.g. a plot that was skipped).
    overwrite : bool, default=False

    Returns
    -------
    (report.md, report.html, results.json) paths
    """
    folder = Path(folder)
    rows = [
        (
            f"{e.n_way}-way {e.k_shot}-shot",
            f"{e.mean:.3f} ± {e.ci95:.3f}",
            str(len(e.accuracies)),
            str(e.n_query),
            f"{1 / e.n_way:.3f}",
        )
        for e in evaluations
    ]
    head = (
        "setting",
        "accuracy (mean ± 95% CI)",
        "episodes",
        "queries/class",
        "chance",
    )

    warnings = chance_warnings(evaluations)
    notes = list(notes)
    m = markdown_text
    md = [f"# {m(title)}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(map(m, r)) + " |" for r in rows]
    md += [x for w in warnings for x in ("", f"**Warning**: {m(w)}.")]
    md += [x for n in notes for x in ("", f"**Note**: {m(n)}")]
    md += ["", "## Settings", ""]
    md += [f"- **{m(k)}**: {m(v)}" for k, v in facts.items()]
    for caption, name in plots.items():
        md += ["", f"## {m(caption)}", "", f"![{m(caption)}]({name})"]
    md.append("")

    h = html.escape
    page = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'>",
        f"<title>{h(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #aaa;padding:.3em .6em}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{h(title)}</h1>",
        "<table><tr>",
        *[f"<th>{h(c)}</th>" for c in head],
        "</tr>",
    ]
    for r in rows:
        page.append("<tr>" + "".join(f"<td>{h(c)}</td>" for c in r) + "</tr>")
    page.append("</table>")
    page += [f"<p><b>Warning</b>: {h(w)}.</p>" for w in warnings]
    page += [f"<p><b>Note</b>: {h(n)}</p>" for n in notes]
    page += ["<h2>Settings</h2>", "<ul>"]
    page += [f"<li><b>{h(str(k))}</b>: {h(str(v))}</li>" for k, v in facts.items()]
    page.append("</ul>")
    for caption, name in plots.items():
        page += [f"<h2>{h(caption)}</h2>", f"<img src='{h(name)}' alt='{h(caption)}'>"]
    page.append("</body></html>")

    results = {
        "title": title,
        "facts": facts,
        "evaluations": [e.as_dict() for e in evaluations],
        "warnings": warnings,
        "notes": notes,
        "plots": plots,
    }
    out = (folder / "report.md", folder / "report.html", folder / "results.json")
    for path, text in zip(
        out,
        ("\n".join(md), "\n".join(page), json.dumps(results, indent=1)),
        strict=True,
    ):
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return out
