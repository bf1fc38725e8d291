"""The error-analysis report (tokclf.inference.report): its SemEval-2013 categories against nervaluate, its
numbers against `tokclf evaluate --output_file`, the report written at the end of training, bad input,
and the page in a real browser (headless Chromium through playwright; skipped without Debian's chromium)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from nervaluate import Evaluator

from helpers import random_head_model
from tokclf.cli import evaluate_main, train_main
from tokclf.inference.report import errors
from tokclf.inference.report.build import ReportInput, write_report
from tokclf.inference.report.errors import Span

TYPES = ["PER", "LOC", "ORG"]
TAGS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def nervaluate_results(gold_spans, predicted_spans, tags=TYPES) -> dict:
    as_dicts = lambda doc: [{"label": s.kind, "start": s.start, "end": s.end - 1} for s in doc]  # noqa: E731
    return Evaluator([as_dicts(d) for d in gold_spans], [as_dicts(d) for d in predicted_spans], tags=tags,
                     loader="dict").evaluate()


def four_counts(result) -> dict:
    return {k: getattr(result, k) for k in ("correct", "incorrect", "partial", "missed", "spurious")}


def overlaps_several(gold, predicted) -> bool:
    return any(sum(p.overlaps(g) for g in gold) > 1 for p in predicted)


sentences_of_tags = st.lists(st.integers(1, 12).flatmap(
    lambda n: st.tuples(st.lists(st.sampled_from(TAGS), min_size=n, max_size=n),
                        st.lists(st.sampled_from(TAGS), min_size=n, max_size=n))), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(sentences_of_tags)
def test_categories_add_up_to_nervaluates_schemes(pairs):
    """Over random gold and predicted tag sequences (invalid IOB2 included), the six categories give
    nervaluate's strict, exact and partial counts, overall, and its strict correct count per type; its
    ent_type counts too wherever no prediction overlaps two gold spans (there it prefers the closest one
    of its own type, where tokclf and the other schemes take the first)."""
    gold = [errors.spans(g) for g, _ in pairs]
    predicted = [errors.spans(p) for _, p in pairs]
    ours = errors.count(m for g, p in zip(gold, predicted) for m in errors.categorize(g, p))
    theirs = nervaluate_results(gold, predicted)
    schemes = errors.schemes(ours["ALL"])
    for scheme in ("strict", "exact", "partial"):
        assert schemes[scheme] == four_counts(theirs["overall"][scheme]), scheme
    if not any(overlaps_several(g, p) for g, p in zip(gold, predicted)):
        assert schemes["ent_type"] == four_counts(theirs["overall"]["ent_type"])
    for kind, result in theirs["entities"].items():
        assert ours.get(kind, {}).get("exact", 0) == result["strict"].correct, kind
    assert sum(ours["ALL"][c] for c in errors.CATEGORIES if c != "spurious") == sum(len(g) for g in gold)
    assert sum(ours["ALL"][c] for c in errors.CATEGORIES if c != "missed") == sum(len(p) for p in predicted)


@pytest.mark.parametrize("gold, predicted, expected", [
    ([Span("PER", 0, 2)], [Span("PER", 0, 2)], ["exact"]),
    ([Span("PER", 0, 2)], [Span("PER", 0, 1)], ["boundary"]),
    ([Span("PER", 0, 2)], [Span("LOC", 0, 2)], ["type"]),
    ([Span("PER", 0, 2)], [Span("LOC", 1, 3)], ["boundary+type"]),
    ([Span("PER", 0, 2)], [], ["missed"]),
    ([], [Span("ORG", 3, 4)], ["spurious"]),
    # two predictions over one gold span: the first is matched, the second is spurious
    ([Span("PER", 0, 4)], [Span("PER", 0, 2), Span("PER", 2, 4)], ["boundary", "spurious"]),
])
def test_each_category(gold, predicted, expected):
    assert [m.category for m in errors.categorize(gold, predicted)] == expected


# --- a trained tiny model: the report at the end of training, and evaluate's --------------------------------

def train_args(tiny_model, conll_dir, out, *extra) -> list[str]:
    return ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(out),
            "--per_device_train_batch_size", "16", "--learning_rate", "1e-2", "--num_train_epochs", "2",
            "--seed", "7", "--max_length", "64", "--stride", "16", "--logging_steps", "3", *extra]


@pytest.fixture(scope="module")
def trained(tiny_model, conll_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train_main(train_args(tiny_model, conll_dir, out))
    return out


def test_training_writes_the_report_by_default(trained):
    report = trained / "report"
    page = (report / "index.html").read_text(encoding="utf-8")
    for figure in ("per_type.svg", "confusion.svg", "categories.svg", "curves.svg", "curves.png"):
        assert (report / "figures" / figure).stat().st_size > 1000, figure
        assert figure.endswith(".png") or f'src="figures/{figure}"' in page
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["split"] == "validation" and numbers["sentences"] == 61
    # the card shows the curves the report drew, and the run's options are on the page
    assert "](report/figures/curves.png)" in (trained / "README.md").read_text()
    assert "learning_rate" in page and "hub_token" not in page


def test_a_push_uploads_the_figures_not_the_sentences():
    """index.html and report.json hold sentences of the data; the card's figures go up."""
    from huggingface_hub.utils import filter_repo_objects

    from tokclf.training.hub import ignore_patterns

    files = ["README.md", "report/index.html", "report/report.json", "report/figures/curves.png",
             "report/figures/per_type.svg"]
    assert list(filter_repo_objects(files, ignore_patterns=ignore_patterns(False))) == [
        "README.md", "report/figures/curves.png", "report/figures/per_type.svg"]


def test_no_report_skips_it(tiny_model, conll_dir, tmp_path):
    train_main(train_args(tiny_model, conll_dir, tmp_path, "--num_train_epochs", "1", "--no_report"))
    assert (tmp_path / "all_results.json").is_file() and not (tmp_path / "report").exists()
    assert "curves.png" not in (tmp_path / "README.md").read_text()


def test_a_report_that_cannot_be_written_does_not_lose_the_run(tiny_model, conll_dir, tmp_path, capsys):
    (tmp_path / "report").write_text("a file where the report folder goes")
    train_main(train_args(tiny_model, conll_dir, tmp_path, "--num_train_epochs", "1"))
    assert "warning: could not write the report in" in capsys.readouterr().out
    assert (tmp_path / "all_results.json").is_file() and (tmp_path / "README.md").is_file()


def test_report_numbers_equal_evaluates_json_and_nervaluate(trained, conll_dir, tmp_path, monkeypatch):
    import tokclf.evaluate

    seen = []
    monkeypatch.setattr(tokclf.evaluate, "write_report",
                        lambda folder, report: seen.append(report) or write_report(folder, report))
    evaluate_main(["--model", str(trained), "--data_dir", str(conll_dir), "--output_file", str(tmp_path / "e.json"),
                   "--report", str(tmp_path / "report")])
    printed = json.loads((tmp_path / "e.json").read_text())
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())
    assert numbers["metrics"] == {k: v for k, v in printed.items()
                                  if k not in ("decoding", "context_sentences", "confusion")}
    assert numbers["confusion"] == printed["confusion"]
    for row in numbers["per_type"]:
        kind = row["type"]
        assert (row["precision"], row["recall"], row["support"]) == (
            printed[f"{kind}_precision"], printed[f"{kind}_recall"], printed[f"{kind}_number"])
        # exact matches are seqeval's true positives; exact + type are the confusion table's diagonal-or-typed hits
        assert numbers["categories"][kind]["exact"] == round(row["recall"] * row["support"])
        typed = sum(n for k, n in printed["confusion"][kind].items() if k != "O")
        assert numbers["categories"][kind]["exact"] + numbers["categories"][kind]["type"] == typed
    # nervaluate parses the same tag sequences itself (its list loader) and agrees
    gold, predicted = [list(t) for t in seen[0].gold], seen[0].predicted
    theirs = Evaluator(gold, predicted, tags=TYPES, loader="list").evaluate()
    for scheme in ("strict", "exact", "partial"):
        assert numbers["schemes"][scheme] == four_counts(theirs["overall"][scheme]), scheme
    assert sum(numbers["categories"]["ALL"].values()) > 0


# --- bad input -----------------------------------------------------------------------------------------------

def test_an_empty_split_is_a_clear_error(trained, tmp_path, capsys):
    empty = tmp_path / "empty.conll"
    empty.write_text("-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--model", str(trained), "--test_file", str(empty), "--report", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert str(empty) in capsys.readouterr().err


def test_write_report_refuses_an_empty_split(tmp_path):
    from tokclf.errors import DataError

    with pytest.raises(DataError, match="synthetic.conll: no sentences"):
        write_report(tmp_path, ReportInput([], [], [], {}, "iob", "synthetic.conll"))
    assert not (tmp_path / "index.html").exists()


def test_a_model_without_entity_tags_gets_the_tag_confusion(tiny_model, conll_dir, tmp_path):
    model = random_head_model(tiny_model, tmp_path / "pos", ["NN", "NNP"], task_name="pos", max_length=32, stride=8)
    evaluate_main(["--model", str(model), "--data_dir", str(conll_dir), "--report", str(tmp_path / "r")])
    numbers = json.loads((tmp_path / "r" / "report.json").read_text())
    page = (tmp_path / "r" / "index.html").read_text()
    assert "categories" not in numbers and "confusion" not in numbers
    assert set(numbers["token_confusion"]) == {"NN", "NNP"} and numbers["confused_words"]
    assert 'src="figures/token_confusion.svg"' in page and (tmp_path / "r" / "figures" / "token_confusion.svg").is_file()
    assert "Error categories" not in page


HOSTILE = ["<script>alert(1)</script>", "has space", "a&b", "$x_1$", "\"quoted'"]


def synthetic_report(n_sentences: int, kinds: list[str], seed: int = 0) -> ReportInput:
    """Sentences of random words with gold spans of `kinds` and predictions that are right about half the time."""
    rng = random.Random(seed)
    words, gold, predicted = [], [], []
    for _ in range(n_sentences):
        n = rng.randint(5, 25)
        words.append([rng.choice(["the", "Paris", "<b>", "&amp;", "Zoë", "</script>", "x"]) for _ in range(n)])
        g, p = ["O"] * n, ["O"] * n
        for tags in (g, p):
            for start in range(0, n - 2, 4):
                if rng.random() < 0.5:
                    kind = rng.choice(kinds)
                    tags[start] = f"B-{kind}"
                    if rng.random() < 0.5:
                        tags[start + 1] = f"I-{kind}"
        gold.append(g)
        predicted.append(p if rng.random() < 0.6 else g)
    from tokclf.inference.scoring import score_tags

    return ReportInput(words, gold, predicted, score_tags(gold, predicted, "iob"), "iob", "synthetic.conll")


def test_labels_with_spaces_and_html_are_escaped(tmp_path):
    index = write_report(tmp_path, synthetic_report(200, HOSTILE))
    page = index.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "</script>\",\"" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the per-type table and the filter, as text
    assert page.count("<script") == 2  # the data blob and the page's own script, nothing from the data
    numbers = json.loads((tmp_path / "report.json").read_text())
    assert {row["type"] for row in numbers["per_type"]} <= set(HOSTILE)


def test_no_network_address_in_the_page(trained):
    page = (trained / "report" / "index.html").read_text(encoding="utf-8")
    loads = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\' >]+)', page)
    assert loads and not [url for url in loads if re.match(r"(?i)([a-z]+:)?//", url)]
    assert "@import" not in page and "url(" not in page


# --- the page in a real browser ------------------------------------------------------------------------------

def browser():
    """playwright's Python package driving Debian's chromium (playwright never downloads a browser here)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM}: scripts/setup.sh installs Debian's chromium when run as root "
                    f"with apt-get")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-test.txt")
    return sync_api.sync_playwright()


def open_page(playwright, index: Path, problems: list[str], requests: list[str]):
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(index.as_uri(), wait_until="load")
    return chromium, page


@pytest.mark.slow
def test_the_page_in_headless_chromium(tmp_path):
    """A report of 3,453 sentences (CoNLL-2003's test split) with hostile labels: it loads in under 2 s with
    no console error and no request outside its folder, its marks hold the words of their spans, each
    on its own side of its sentence, the filters work, and a screenshot is written."""
    report = synthetic_report(3453, HOSTILE + TYPES, seed=1)
    index = write_report(tmp_path / "report", report)
    problems, requests = [], []
    with browser() as playwright:
        chromium, page = open_page(playwright, index, problems, requests)
        try:
            load_ms = page.evaluate("() => { const t = performance.getEntriesByType('navigation')[0];"
                                    " return t.loadEventEnd - t.startTime; }")
            check_marks(page, report)
            check_filters(page)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        finally:
            chromium.close()
    assert not problems, problems
    assert all(url.startswith(f"{(tmp_path / 'report').as_uri()}/") for url in requests), requests
    assert 0 < load_ms < 2000, load_ms
    assert (tmp_path / "report.png").stat().st_size > 10_000


def check_marks(page, report: ReportInput) -> None:
    boxes = page.locator(".sentence")
    assert boxes.count() == 25
    first = boxes.nth(0)
    index = int(first.get_attribute("data-index"))
    words = report.words[index]
    gold_line, predicted_line = first.locator('[data-side="gold"]'), first.locator('[data-side="predicted"]')
    gold_box, predicted_box = gold_line.bounding_box(), predicted_line.bounding_box()
    assert gold_box["y"] + gold_box["height"] <= predicted_box["y"] + 1  # gold above predicted
    for line, box, tags in ((gold_line, gold_box, report.gold[index]), (predicted_line, predicted_box,
                                                                        report.predicted[index])):
        marks = line.locator("mark")
        spans = errors.spans(tags)
        assert marks.count() == len(spans)
        for i, span in enumerate(spans):
            mark = marks.nth(i)
            assert (mark.get_attribute("data-type"), int(mark.get_attribute("data-start")),
                    int(mark.get_attribute("data-end"))) == (span.kind, span.start, span.end)
            text = mark.evaluate("m => m.firstChild.textContent")
            assert text == " ".join(words[span.start:span.end])  # the words, as text, never markup
            assert mark.locator(".tag").text_content().startswith(span.kind)
            inside = mark.bounding_box()
            assert inside["width"] > 0 and box["y"] - 1 <= inside["y"] <= box["y"] + box["height"]
    errors_first = [int(b.get_attribute("data-index")) for b in boxes.all()]
    counts = [int(re.search(r"(\d+) error", b.locator(".meta").inner_text())[1]) for b in boxes.all()]
    assert counts == sorted(counts, reverse=True) and len(set(errors_first)) == 25


def check_filters(page) -> None:
    page.select_option("#filter-type", "<script>alert(1)</script>")
    page.select_option("#filter-kind", "missed")
    marks = page.locator('.sentence mark[data-kind="missed"][data-type="<script>alert(1)</script>"]')
    assert page.locator(".sentence").count() > 0
    for box in page.locator(".sentence").all():
        assert box.locator('mark[data-kind="missed"][data-type="<script>alert(1)</script>"]').count() > 0
    assert marks.count() >= page.locator(".sentence").count()
    before = page.locator("#page-info").inner_text()
    page.click("#next")
    assert page.locator("#page-info").inner_text() != before or "of 1 " in before
