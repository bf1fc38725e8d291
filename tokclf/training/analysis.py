"""The error-analysis report at the end of training: the final model's predictions on one split,
through the same `write_report` as `tokclf evaluate --report`.

The validation split, not the test split, when the run has both: error analysis is for deciding what
to change, and deciding it on test errors would tune on the test set. Without validation, the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tokclf.inference.scoring import evaluate_split


def report_split(splits) -> Optional[str]:
    return next((name for name in ("validation", "test") if name in splits), None)


def write_run_report(run, final_model: str) -> Optional[Path]:
    """Every process evaluates (the predictions are gathered); the main process writes the report.
    Returns the page's path on the main process, None where nothing was written."""
    name = report_split(run.parts.splits)
    if not run.cfg.output.report or name is None:
        return None
    # Imported here: matplotlib and jinja2 take seconds to load, which a run with --no_report never needs.
    from tokclf.inference.report.build import ReportInput, write_report

    parts, split = run.parts, run.parts.splits[name]
    model = run.scoring_model()
    decoding = run.cfg.evaluation.eval_decoding
    metrics, predicted = evaluate_split(model, split.loader, parts.accelerator, split.encoded, split.tags,
                                        parts.labels, decoding)
    if not run.is_main:
        return None
    report = ReportInput(split.words, split.tags, predicted, metrics, parts.labels.scheme, f"{name} split",
                         title=f"{run.out.root.name}: errors of the {final_model} model on the {name} split",
                         decoding=decoding, run_dir=run.out.root,
                         extra={"split": name, "final_model": final_model, "decoding": decoding})
    try:
        index = write_report(run.out.report, report)
    except OSError as err:  # the model is saved already: a report that cannot be written must not lose the run
        run.accelerator.print(f"warning: could not write the report in {run.out.report}: {err.strerror or err}")
        return None
    run.accelerator.print(f"report: {index}")
    return index
