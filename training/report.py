"""Per-run report: metrics JSON, a markdown summary and PNG plots (confusion matrix, curves)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "mcc")


def markdown(title: str, metrics: dict, extra: dict | None = None) -> str:
    lines = [f"# {title}", ""]
    for k, v in (extra or {}).items():
        lines.append(f"- {k}: {v}")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {metrics[k]:.4f} |" for k in HEADLINE if k in metrics]
    lines += ["", "| class | precision | recall | f1 | accuracy | support |", "|---|---|---|---|---|---|"]
    for name, c in metrics["per_class"].items():
        lines.append(
            f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['accuracy']:.4f} | {c['support']} |"
        )
    labels = metrics["labels"]
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
              "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {labels[i]} | " + " | ".join(str(x) for x in row) + " |"
              for i, row in enumerate(metrics["confusion_matrix"])]
    return "\n".join(lines) + "\n"


def plot_confusion(metrics: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4 + len(metrics["labels"]) * 0.5,) * 2)
    ConfusionMatrixDisplay(confusion_matrix=__import__("numpy").array(metrics["confusion_matrix"]),
                           display_labels=metrics["labels"]).plot(ax=ax, colorbar=False)
    ax.set_title(f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    steps = [h["step"] for h in history]
    a.plot(steps, [h["train_loss"] for h in history], marker="o")
    a.set(xlabel="optimizer step", ylabel="train loss (mean since last eval)", title="loss")
    for k in ("accuracy", "macro_f1"):
        b.plot(steps, [h["val"][k] for h in history], marker="o", label=k)
    b.set(xlabel="optimizer step", title="validation")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out_dir: Path, title: str, metrics: dict, history: list[dict] | None = None,
                 extra: dict | None = None) -> Path:
    """Write metrics.json, report.md, confusion_matrix.png and (with history) curves.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(
        {"title": title, **(extra or {}), "metrics": metrics, "history": history or []}, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown(title, metrics, extra))
    plot_confusion(metrics, out_dir / "confusion_matrix.png")
    if history:
        plot_curves(history, out_dir / "curves.png")
    return out_dir
