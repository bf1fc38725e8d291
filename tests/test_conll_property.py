"""Property-based: random well-formed CoNLL text round-trips exactly through the reader; random
malformed input raises the project's DataError and nothing else."""


from hypothesis import HealthCheck, given, settings, strategies as st

from tokclf.formats.registry import read_file
from tokclf.errors import DataError

WORD = st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=8).filter(
    lambda w: w != "-DOCSTART-")
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "NN", "VBZ"])
EXAMPLES = 300


@st.composite
def documents(draw):
    columns = draw(st.integers(2, 5))
    sentence = st.lists(st.tuples(WORD, st.lists(TAG, min_size=columns - 1, max_size=columns - 1)), min_size=1, max_size=6)
    docs = draw(st.lists(st.lists(sentence, min_size=1, max_size=4), min_size=1, max_size=3))
    separator = draw(st.sampled_from([" ", "\t", "  "]))
    return columns, docs, separator


def render(docs, separator) -> str:
    lines = []
    for doc in docs:
        lines += ["-DOCSTART- -X- -X- O", ""]
        for sentence in doc:
            lines += [separator.join([word, *tags]) for word, tags in sentence] + [""]
    return "\n".join(lines) + "\n"


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(documents())
def test_well_formed_conll_round_trips(tmp_path, generated):
    columns, docs, separator = generated
    path = tmp_path / "f.conll"
    path.write_text(render(docs, separator), encoding="utf-8")
    sentences = read_file(path, "ner")
    expected = [(s, d) for d, doc in enumerate(docs) for s in doc]
    assert [x.words for x in sentences] == [[w for w, _ in s] for s, _ in expected]
    assert [x.tags for x in sentences] == [[tags[-1] for _, tags in s] for s, _ in expected]
    assert [x.doc_id for x in sentences] == [d for _, d in expected]


@st.composite
def malformed(draw):
    columns, docs, separator = draw(documents())
    text = render(docs, separator).encode("utf-8")
    damage = draw(st.sampled_from(["drop_column", "add_column", "bad_bytes", "truncate", "noise"]))
    lines = text.split(b"\n")
    word_lines = [i for i, line in enumerate(lines) if line and not line.startswith(b"-DOCSTART-")]
    if damage in ("drop_column", "add_column") and len(word_lines) < 2:
        damage = "bad_bytes"  # the first word line sets the column count: damage a later one
    i = draw(st.sampled_from(word_lines[1:] if damage in ("drop_column", "add_column") else word_lines))
    if damage == "drop_column":
        lines[i] = lines[i].rsplit(separator.encode(), 1)[0]
    elif damage == "add_column":
        lines[i] += b" EXTRA"
    elif damage == "bad_bytes":
        lines[i] += b"\xff\xfe"
    elif damage == "truncate":
        return damage, b"\n".join(lines[: i])
    else:
        return damage, draw(st.binary(max_size=200))
    return damage, b"\n".join(lines)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(malformed())
def test_malformed_conll_raises_only_data_error(tmp_path, case):
    damage, data = case
    path = tmp_path / "bad.conll"
    path.write_bytes(data)
    try:
        read_file(path, "ner")
    except DataError as err:
        assert str(err).startswith(str(path))  # the message names the file (and line, where one is at fault)
        return
    # Cutting the file short or random bytes may still leave valid CoNLL; a damaged line never does.
    assert damage in ("truncate", "noise")
