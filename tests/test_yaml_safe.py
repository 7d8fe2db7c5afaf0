"""The one YAML loader of uploaded and replaceable files (storage/schemas/yaml_safe.py): safe, and no
alias — so a few lines cannot expand into a huge structure — for the FAQ files and the CSDL layouts."""

from __future__ import annotations

import pytest
import yaml

from storage.errors import DomainError
from storage.schemas.csdl import parse_layout
from storage.schemas.faq import load_yaml, parse_knowledge_base
from storage.schemas.yaml_safe import load_no_aliases

ALIAS = "base: &row [1, 2]\ncopy: *row\n"
LAUGHS = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n'


def test_plain_yaml_and_an_anchor_alone_load() -> None:
    assert load_no_aliases("entries:\n  - key: a\n    answer: |\n      Dòng 1\n") == {
        "entries": [{"key": "a", "answer": "Dòng 1\n"}]
    }
    assert load_no_aliases("base: &row [1, 2]\n") == {"base": [1, 2]}  # nothing refers to it


@pytest.mark.parametrize("text", [ALIAS, LAUGHS])
def test_an_alias_is_refused_where_it_is(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        load_no_aliases(text)
    assert "aliases are not allowed" in str(caught.value)
    assert isinstance(caught.value, yaml.MarkedYAMLError)
    assert caught.value.problem_mark is not None and caught.value.problem_mark.line == 1


def test_no_python_objects() -> None:
    with pytest.raises(yaml.YAMLError):
        load_no_aliases("!!python/object/apply:os.system ['true']\n")


def test_each_file_says_it_in_its_own_words() -> None:
    with pytest.raises(DomainError) as faq:
        load_yaml(ALIAS)
    assert (faq.value.code, faq.value.params["line"]) == ("faq.yaml_invalid", 2)
    with pytest.raises(DomainError) as knowledge:
        parse_knowledge_base(LAUGHS.encode())
    assert knowledge.value.code == "faq.yaml_invalid"
    with pytest.raises(DomainError) as layout:
        parse_layout(ALIAS)
    assert layout.value.code == "csdl.layout_invalid"
    assert layout.value.params["problem"] == "line 2: aliases are not allowed"
