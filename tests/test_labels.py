"""Tag schemes: IOB1 detection and conversion, label sets, unknown tags."""

import pytest

from tokclf.errors import DataError
from helpers import prepared_tags
from tokclf.data.labels import LabelSet
from tokclf.data.schemes import iob1_to_iob2, is_iob1, resolve_scheme


@pytest.mark.parametrize("iob1, iob2", [
    (["I-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),
    (["I-PER", "B-PER", "I-PER"], ["B-PER", "B-PER", "I-PER"]),  # two adjacent spans of one type
    (["I-PER", "I-LOC"], ["B-PER", "B-LOC"]),  # type change starts a span
    (["O", "I-ORG", "O", "I-ORG"], ["O", "B-ORG", "O", "B-ORG"]),
    (["B-PER", "I-PER"], ["B-PER", "I-PER"]),
])
def test_iob1_to_iob2(iob1, iob2):
    assert iob1_to_iob2(iob1) == iob2


def test_scheme_detection():
    assert is_iob1([["O", "I-PER"]])
    assert not is_iob1([["B-PER", "I-PER", "O"]])
    assert resolve_scheme("auto", "ner", [["I-PER"]]) == "iob1"
    assert resolve_scheme("auto", "ner", [["B-PER"]]) == "iob2"
    assert resolve_scheme("auto", "pos", [["NN"]]) == "none"


def test_label_set_has_b_and_i_of_every_type_and_maps_b_to_i():
    labels = LabelSet.from_tags([["B-PER", "O", "B-LOC", "I-LOC"]], "iob")
    assert labels.names == ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")
    cont = labels.continuation_ids()
    assert [labels.names[cont[labels.label2id[n]]] for n in labels.names] == ["O", "I-LOC", "I-LOC", "I-PER", "I-PER"]


def test_tag_outside_scheme_is_named():
    with pytest.raises(DataError, match=r"tag 'X-PER' is not IOB"):
        prepared_tags({"train": [["O", "X-PER"]]}, "auto", "ner")
    with pytest.raises(DataError, match=r"tag 'I-' is not IOB"):
        prepared_tags({"train": [["I-"]]}, "iob2", "ner")


def test_validation_tag_unseen_in_training_is_an_error():
    with pytest.raises(DataError, match=r"validation split, sentence 0, word 1: tag 'B-MISC' never occurs"):
        prepared_tags({"train": [["B-PER"]], "validation": [["O", "B-MISC"]]}, "auto", "ner")


def test_unseen_validation_tags_can_become_o_with_a_count(capsys):
    tags, _ = prepared_tags({"train": [["B-PER"]], "validation": [["O", "B-MISC", "I-MISC"]]}, "auto", "ner", unseen="O")
    assert tags["validation"] == [["O", "O", "O"]]
    assert "2 tags never seen in training became O" in capsys.readouterr().out
