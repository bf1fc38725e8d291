"""CoNLL-U and CoNLL-U Plus (tokclf/formats/conllu.py) against the `conllu` package: it reads our
training files as our reader does (words, UPOS, sentence ids) and parses every file predict writes;
CoNLL data converted to CoNLL-U trains on the same words and tags to the digit; bad files are one error."""

import json
import random

import pytest

from conftest import SHARED_CONLL, needs_conll
from tokclf.cli import evaluate_main, predict_main, train_main
from tokclf.errors import DataError
from tokclf.formats.base import Reading, Writing
from tokclf.formats.conll import conll_sentences
from tokclf.formats.conllu import ud_sentences
from tokclf.formats.ud_tags import column_to_fill
from tokclf.formats.registry import by_name, detect, input_chunks, output_lines, read_file, read_input, text_format
from tokclf.formats.textfile import numbered_lines

conllu = pytest.importorskip("conllu", reason="the conllu package (requirements-test.txt) is not installed")

HEADER = "# global.columns = ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC NER"
SPLIT_FILES = {"train": "eng.train", "validation": "eng.testa", "test": "eng.testb"}


def token_line(number, word, pos, ner):
    return "\t".join([str(number), word, "_", pos, pos, "_", "_", "_", "_", "_", ner])


def conll_to_conllu(conll_path, out_path, n_sentences=None, seed=0):
    """conll_path's sentences (`word POS chunk NER`) as CoNLL-U Plus, POS in UPOS and XPOS, NER in its column,
    with what real treebanks hold besides words: `# newdoc` per -DOCSTART-, sent_id and text comments, a
    multiword range line over some word pairs, an empty node in some sentences."""
    rng, lines, doc_seen = random.Random(seed), [HEADER], -1
    for index, (doc, rows) in enumerate(conll_sentences(numbered_lines(conll_path))):
        if n_sentences is not None and index == n_sentences:
            break
        if doc != doc_seen:
            lines.append(f"# newdoc id = doc{doc}")
            doc_seen = doc
        words = [columns[0] for _, columns in rows]
        lines += [f"# sent_id = s{index}", f"# text = {' '.join(words)}"]
        merged = rng.randrange(len(words) - 1) if len(words) > 1 and rng.random() < 0.5 else None
        for i, (_, columns) in enumerate(rows):
            if i == merged:  # the surface token of words i and i+1 (as `al` of `a el`)
                lines.append("\t".join([f"{i + 1}-{i + 2}", words[i] + words[i + 1]] + ["_"] * 9))
            lines.append(token_line(i + 1, columns[0], columns[1], columns[-1]))
        if rng.random() < 0.3:
            lines.append("\t".join(["1.1", "elided", "_", "_", "_", "_", "_", "_", "0:root", "_", "_"]))
        lines.append("")
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_path


def test_the_conllu_package_reads_our_files_as_our_reader(conll_dir, tmp_path):
    path = conll_to_conllu(conll_dir / "eng.train", tmp_path / "train.conllu")
    theirs = conllu.parse(path.read_text(encoding="utf-8"))
    ours = list(ud_sentences(path))
    assert len(ours) == len(theirs) == 240
    for mine, their in zip(ours, theirs):
        words = [t for t in their if isinstance(t["id"], int)]  # not ranges (tuples with "-"), not empty nodes
        assert mine.column("form") == [t["form"] for t in words]
        assert mine.column("upos") == [t["upos"] for t in words]
        assert mine.sent_id == their.metadata["sent_id"] and mine.text == their.metadata["text"]
    assert any(isinstance(t["id"], tuple) and t["id"][1] == "-" for s in theirs for t in s)  # ranges were there
    assert any(isinstance(t["id"], tuple) and t["id"][1] == "." for s in theirs for t in s)  # empty nodes too
    pos = read_file(path, "pos")
    conll = read_file(conll_dir / "eng.train", "pos")
    assert [(s.words, s.tags, s.doc_id) for s in pos] == [(s.words, s.tags, s.doc_id) for s in conll]
    assert len({s.doc_id for s in pos}) == 48


def test_named_and_numbered_label_columns(conll_dir, tmp_path):
    path = conll_to_conllu(conll_dir / "eng.testa", tmp_path / "dev.conllu")
    ner = read_file(path, "ner")
    assert [s.tags for s in ner] == [s.tags for s in read_file(conll_dir / "eng.testa", "ner")]
    assert [s.tags for s in read_file(path, "ner", label_column="NER")] == [s.tags for s in ner]
    by_number = read_file(path, "pos", label_column="4")
    assert [s.tags for s in by_number] == [s.tags for s in read_file(path, "pos", label_column="xpos")]
    with pytest.raises(DataError, match=r"dev\.conllu: --label_column_name 'lemmas': no such tag column; the file's "
                                        r"columns are ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC NER\."):
        read_file(path, "pos", label_column="lemmas")


UD_SAMPLE = """# newdoc id = a
# sent_id = a-1
# text = Vamos al cine.
1\tVamos\tir\tVERB\t_\t_\t0\troot\t_\t_
2-3\tal\t_\t_\t_\t_\t_\t_\t_\t_
2\ta\ta\tADP\t_\t_\t4\tcase\t_\t_
3\tel\tel\tDET\t_\t_\t4\tdet\t_\t_
4\tcine\tcine\tNOUN\t_\t_\t1\tobl\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_

# sent_id = a-2
1\tSí\tsí\tINTJ\t_\t_\t0\troot\t_\tSpaceAfter=No
2\t!\t!\tPUNCT\t_\t_\t1\tpunct\t_\t_

# newdoc id = b
# sent_id = b-1
1\tBien\tbien\tADV\t_\t_\t0\troot\t_\t_

"""


def test_plain_ud_file_words_text_documents_and_detection(tmp_path):
    path = tmp_path / "es.txt"  # no .conllu suffix: detected by its comments, for training and for predict
    path.write_text(UD_SAMPLE, encoding="utf-8")
    assert detect(path).name == text_format(path).name == "conllu"
    sentences = read_file(path, "pos")
    assert [(s.words, s.tags, s.doc_id) for s in sentences] == [
        (["Vamos", "a", "el", "cine", "."], ["VERB", "ADP", "DET", "NOUN", "PUNCT"], 0),
        (["Sí", "!"], ["INTJ", "PUNCT"], 0), (["Bien"], ["ADV"], 1)]
    assert sentences[0].where(1) == f"{path}:4 (sentence a-1), word 2" and sentences[1].where(1) == f"{path}:13"
    records = read_input(path).records
    assert [r.text for r in records] == ["Vamos al cine.", "Sí!", "Bien"]  # `# text`, else SpaceAfter=No
    assert [records[0].text[s:e] for s, e in records[0].offsets] == ["Vamos", "al", "al", "cine", "."]
    assert [r.doc for r in records] == [0, 0, 1]
    with pytest.raises(DataError, match=r"no such tag column.*Pass --label_column_name"):
        read_file(path, "ner")


@pytest.mark.parametrize("text, message", [
    ("1\tEU\tEU\tPROPN\n", r"bad\.conllu:1: expected 10 tab-separated columns \(ID FORM LEMMA UPOS XPOS FEATS HEAD "
                           r"DEPREL DEPS MISC\), found 4: '1\\tEU\\tEU\\tPROPN'\. CoNLL-U separates columns by tabs"),
    ("# sent_id = 1\nx\tEU" + "\t_" * 8 + "\n", r"bad\.conllu:2: the ID 'x' is not a number, a range \(2-3\) or an "
                                                  r"empty node \(8\.1\)\."),
    ("# global.columns = FORM NER\nEU\tB-ORG\n", r"bad\.conllu:1: `# global.columns` names FORM NER; a CoNLL-U Plus "
                                                 r"file's first columns are ID FORM\."),
])
def test_bad_files_name_file_line_and_fix(tmp_path, text, message):
    path = tmp_path / "bad.conllu"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_file(path, "pos")


# Predict's output: parsed by the conllu package, read back by our reader


def written(path, tags_of, iob, column=None):
    """The lines predict writes for path's records, each record's tags made by tags_of(words), into
    `column` (None: the writer's default)."""
    inp = read_input(path)
    tags = [tags_of(record.words) for record in inp.records]
    return "".join(line + "\n" for line in output_lines(by_name("conllu", "write"), [(inp, tags, None)],
                                                           Writing(iob=iob, label_column=column)))


def test_chunks_end_where_sentences_or_documents_do(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text(UD_SAMPLE, encoding="utf-8")
    fmt = by_name("conllu", "texts")
    for whole_documents, sizes in ((False, [1, 1, 1]), (True, [2, 1])):
        chunks = list(input_chunks(path, fmt, Reading(), 1, whole_documents))
        assert [len(c.records) for c in chunks] == sizes
        assert [line for c in chunks for line in c.lines] == UD_SAMPLE.splitlines()
        assert chunks[-1].lines[0] == "# newdoc id = b"


def test_pos_output_keeps_every_line_and_fills_upos(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text(UD_SAMPLE, encoding="utf-8")
    text = written(path, lambda words: [f"T{len(w)}" for w in words], iob=False)
    kept = [line.split("\t")[:3] + line.split("\t")[4:] for line in UD_SAMPLE.splitlines()]
    assert [line.split("\t")[:3] + line.split("\t")[4:] for line in text.splitlines()] == kept
    parsed = conllu.parse(text)
    assert [[t["upos"] for t in s if isinstance(t["id"], int)] for s in parsed] == [
        ["T5", "T1", "T2", "T4", "T1"], ["T2", "T1"], ["T4"]]
    assert [s.metadata["sent_id"] for s in parsed] == ["a-1", "a-2", "b-1"]
    out = tmp_path / "out.conllu"
    out.write_text(text, encoding="utf-8")
    assert read_file(out, "pos")[0].tags == ["T5", "T1", "T2", "T4", "T1"]


def test_ner_output_adds_an_ner_column_to_plain_conllu(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text(UD_SAMPLE, encoding="utf-8")
    text = written(path, lambda words: ["B-LOC" if w == "cine" else "O" for w in words], iob=True)
    assert text.splitlines()[0] == HEADER and text.splitlines()[1:] == [
        line + ("\t" + ("B-LOC" if "\tcine\t" in line else "O" if line.split("\t")[0].isdigit() else "_")
                if line and not line.startswith("#") else "") for line in UD_SAMPLE.splitlines()]
    parsed = conllu.parse(text)
    assert [t["ner"] for t in parsed[0]] == ["O", "_", "O", "O", "B-LOC", "O"]
    out = tmp_path / "out.conllu"
    out.write_text(text, encoding="utf-8")
    assert [s.tags for s in read_file(out, "ner")] == [["O", "O", "O", "B-LOC", "O"], ["O", "O"], ["O"]]


def test_text_input_is_written_as_new_sentences(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("John, in Paris.\nEU rejects German call\n", encoding="utf-8")
    for iob, tags_of in ((True, lambda words: ["B-PER" if w == "John" else "O" for w in words]),
                         (False, lambda words: ["X"] * len(words))):
        text = written(path, tags_of, iob)
        parsed = conllu.parse(text)
        assert [s.metadata["text"] for s in parsed] == ["John, in Paris.", "EU rejects German call"]
        assert [t["misc"] for t in parsed[0]] == [{"SpaceAfter": "No"}, None, None, {"SpaceAfter": "No"}, None]
        out = tmp_path / "out.conllu"
        out.write_text(text, encoding="utf-8")
        assert read_input(out).records[0].text == "John, in Paris."
        back = read_file(out, "ner" if iob else "pos")
        assert [(s.words, s.tags) for s in back] == [(w, tags_of(w)) for w in (["John", ",", "in", "Paris", "."],
                                                                               ["EU", "rejects", "German", "call"])]


# The column predict fills: the one the model was trained on

PTB = ["NN", "NNP", "VBZ", "JJ", "$"]  # Penn Treebank tags, as in CoNLL-2003's POS column
UD_TAGS = ["NOUN", "PROPN", "VERB", "ADJ", "PUNCT"]


def words_of(parsed) -> list:
    """The syntactic words of conllu.parse's sentences: not ranges (tuple ids) and not empty nodes."""
    return [t for sentence in parsed for t in sentence if isinstance(t["id"], int)]


@pytest.mark.parametrize("label_column, labels, iob, column", [
    ("xpos", PTB, False, "xpos"),  # --label_column_name xpos on a CoNLL-U file
    ("XPOS", UD_TAGS, False, "xpos"),  # named: the name wins over what the tags look like
    (None, PTB, False, "xpos"),  # CoNLL-2003's POS column: treebank tags, not UPOS
    ("1", PTB, False, "xpos"),  # a number is a column of a CoNLL file, no CoNLL-U column
    (None, ["O"] + UD_TAGS, False, "upos"),  # all UPOS tags (O aside)
    ("deprel", ["nsubj", "root", "obj", "case"], False, "deprel"),
    (None, ["O", "B-LOC", "I-LOC"], True, "ner"),  # entity tags: an NER column, added to plain CoNLL-U
    ("tag", PTB, False, "xpos"),  # a DocBin model's token.tag_
    ("pos_tags", UD_TAGS, False, "upos"),  # a token rows' column names no CoNLL-U column: the rule decides
])
def test_the_column_filled_is_the_one_the_model_was_trained_on(tmp_path, label_column, labels, iob, column):
    assert column_to_fill(label_column, labels, iob) == column
    path = tmp_path / "in.conllu"
    path.write_text(UD_SAMPLE, encoding="utf-8")
    tags_of = lambda words: [labels[len(w) % len(labels)] for w in words]  # noqa: E731
    text = written(path, tags_of, iob, column)
    parsed, before = conllu.parse(text), conllu.parse(UD_SAMPLE)
    assert [t[column] for t in words_of(parsed)] == tags_of([t["form"] for t in words_of(before)])
    others = [[{k: v for k, v in t.items() if k != column} for t in s] for s in parsed]
    assert others == [[{k: v for k, v in t.items() if k != column} for t in s] for s in before]
    assert [{k: v for k, v in s.metadata.items() if k != "global.columns"} for s in parsed] == [
        s.metadata for s in before]
    assert (text.splitlines()[0] == HEADER) == (column == "ner")  # only a column the file lacks gets a header


def test_a_conllu_plus_column_of_the_trained_name_is_filled_else_one_is_added(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text("# global.columns = ID FORM UPOS ENTITY\n# sent_id = 1\n1\tEU\tPROPN\t_\n2\trejects\tVERB\t_\n\n",
                    encoding="utf-8")
    tags = lambda words: ["B-ORG", "O"]  # noqa: E731
    filled = written(path, tags, True, column_to_fill("Entity", ["O", "B-ORG", "I-ORG"], True))
    assert filled.splitlines() == ["# global.columns = ID FORM UPOS ENTITY", "# sent_id = 1", "1\tEU\tPROPN\tB-ORG",
                                   "2\trejects\tVERB\tO", ""]
    added = written(path, lambda words: ["NNP", "VBZ"], False, column_to_fill(None, PTB, False))
    assert added.splitlines()[0] == "# global.columns = ID FORM UPOS ENTITY XPOS"
    assert [(t["upos"], t["entity"], t["xpos"]) for t in words_of(conllu.parse(added))] == [
        ("PROPN", "_", "NNP"), ("VERB", "_", "VBZ")]


def test_text_input_gets_the_tags_in_the_column_filled(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("EU rejects German call\n", encoding="utf-8")
    text = written(path, lambda words: ["NNP", "VBZ", "JJ", "NN"], False, "xpos")
    assert [(t["upos"], t["xpos"]) for t in words_of(conllu.parse(text))] == [
        ("_", "NNP"), ("_", "VBZ"), ("_", "JJ"), ("_", "NN")]
    assert "global.columns" not in text


@pytest.mark.parametrize("data, extra, column", [
    ("conllu", ["--label_column_name", "xpos"], "xpos"),
    ("conllu", ["--label_column_name", "upos"], "upos"),  # named: UPOS, though the tags are NN and NNP
    ("conll", [], "xpos"),  # CoNLL's POS column: no name, treebank tags
], ids=["conllu-xpos", "conllu-upos", "conll-pos-column"])
def test_predict_fills_the_column_the_model_was_trained_on(base_args, conll_dir, tmp_path, data, extra, column):
    """A tiny model trained on a CoNLL-U column, or on CoNLL's POS column (NN, NNP): predict on a UD file
    fills that column (from args.json and the labels) and keeps every other column as read."""
    source = conllu_dir(conll_dir, tmp_path / "ud", n_sentences=60) if data == "conllu" else conll_dir
    args = list(base_args)
    args[args.index("--data_dir") + 1] = str(source)
    train_main(args + ["--task_name", "pos", "--max_train_steps", "2"] + extra)
    path, out = tmp_path / "in.conllu", tmp_path / "out.conllu"
    path.write_text(UD_SAMPLE, encoding="utf-8")
    predict_main(["--model", str(tmp_path / "out"), "--input", str(path), "--output", str(out)])
    parsed, before = conllu.parse(out.read_text(encoding="utf-8")), conllu.parse(UD_SAMPLE)
    assert {t[column] for t in words_of(parsed)} <= {"NN", "NNP"}  # the model's labels, in every word
    assert [[{**t, column: None} for t in s] for s in parsed] == [[{**t, column: None} for t in s] for s in before]
    assert [s.tags for s in read_file(out, "pos", label_column=column)] == [
        [t[column] for t in s if isinstance(t["id"], int)] for s in parsed]
    if extra:  # evaluate reads the gold tags from the column training named: predict's own tags score 1
        evaluate_main(["--model", str(tmp_path / "out"), "--test_file", str(out), "--output_file",
                       str(tmp_path / "m.json")])
        assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == 1.0


# Training: the CoNLL-U form of a CoNLL corpus trains to the same scores


def conllu_dir(conll_dir, folder, n_sentences=None):
    folder.mkdir(parents=True, exist_ok=True)
    for split, conll_name in SPLIT_FILES.items():
        conll_to_conllu(conll_dir / conll_name, folder / f"{split}.conllu", n_sentences)
    return folder


def scores_of(args, data_dir, out):
    args = list(args)
    args[args.index("--data_dir") + 1] = str(data_dir)
    args[args.index("--output_dir") + 1] = str(out)
    train_main(args + ["--mixed_precision", "no"])
    return json.loads((out / "all_results.json").read_text())


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_the_conllu_form_trains_to_the_same_scores(base_args, conll_dir, tmp_path, task):
    folder = conllu_dir(conll_dir, tmp_path / "ud")
    for split, conll_name in SPLIT_FILES.items():
        assert ([(s.words, s.tags) for s in read_file(folder / f"{split}.conllu", task)]
                == [(s.words, s.tags) for s in read_file(conll_dir / conll_name, task)])
    args = base_args + ["--task_name", task]
    ours, theirs = scores_of(args, folder, tmp_path / "a"), scores_of(args, conll_dir, tmp_path / "b")
    key = "eval_f1" if task == "ner" else "eval_accuracy"
    assert ours[key] == theirs[key] > 0 and ours["train_loss"] == theirs["train_loss"]
    if task == "ner":  # predict on the CoNLL-U test file: the spans of predict on the CoNLL test file
        outputs = {}
        for name, source in (("ud", folder / "test.conllu"), ("conll", conll_dir / "eng.testb")):
            predict_main(["--model", str(tmp_path / "a"), "--input", str(source), "--output",
                          str(tmp_path / f"{name}.out{source.suffix or '.conll'}")])
            outputs[name] = read_file(tmp_path / f"{name}.out{source.suffix or '.conll'}", "ner",
                                      label_column="ner" if name == "ud" else None)
        conllu.parse((tmp_path / "ud.out.conllu").read_text(encoding="utf-8"))
        assert [(s.words, s.tags) for s in outputs["ud"]] == [(s.words, s.tags) for s in outputs["conll"]]
        assert any(t != "O" for s in outputs["ud"] for t in s.tags)


@pytest.mark.slow
@needs_conll
def test_pos_on_conll2003_as_conllu_reaches_the_columns_accuracy(tiny_model, tmp_path):
    """eng.train's POS column as CoNLL-U (ranges, empty nodes, comments) against the same sentences as
    CoNLL columns: a 300-step run reaches the same accuracy."""
    columns, ud = tmp_path / "columns", tmp_path / "ud"
    columns.mkdir()
    for split, conll_name in SPLIT_FILES.items():
        n = 2000 if split == "train" else 300
        lines = []
        for _, rows in conll_sentences(numbered_lines(SHARED_CONLL / conll_name)):
            lines += [" ".join(c) for _, c in rows] + [""]
            n -= 1
            if not n:
                break
        (columns / f"{split}.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")
        conll_to_conllu(columns / f"{split}.conll", (ud.mkdir(exist_ok=True), ud / f"{split}.conllu")[1])
    args = ["--model_name_or_path", str(tiny_model), "--data_dir", "", "--output_dir", "", "--task_name", "pos",
            "--max_train_steps", "300", "--per_device_train_batch_size", "16", "--learning_rate", "1e-2",
            "--seed", "7", "--max_length", "128"]
    ours, theirs = scores_of(args, ud, tmp_path / "a"), scores_of(args, columns, tmp_path / "b")
    assert ours["eval_accuracy"] == theirs["eval_accuracy"] > 0.5
