"""Offline matching of staff questions to knowledge-base entries: a keyword index, not a language model.

Questions arrive as teachers type them on phones: with or without diacritics, in any word order, with
typos, abbreviations ("hs", "sdt") and sometimes in English. Each text is reduced to canonical tokens:

1. a few words whose diacritics carry the meaning are tagged before the accents go ("mượn" = borrow,
   "muộn" = late and "muốn" = want all fold to "muon");
2. `fold` drops case and diacritics;
3. phrases and synonyms become one canonical token ("vắc xin", "vaccine", "tiêm chủng" -> `vacxin`;
   "ở đâu", "mục nào", "where" -> `odau`), so different wordings of one intent meet;
4. stop-words go; unknown words are mended when they are a typo or Telex residue of a known one.

The tables of steps 1, 3 and 4 are data: storage/data/faq_words.yaml, read once on first use.

An entry is scored against a question by how much of the question's information (IDF-weighted) it
covers, how close its best phrasing is, shared word pairs, and a rapidfuzz ratio for what is left of
typos and order. The index is built once per set of entries; a question then takes about a millisecond.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process

from storage.schemas.faq import FaqEntryIn, FaqEntryOut, parse_knowledge_base
from storage.text import fold

KNOWLEDGE_BASE_PATH = Path(__file__).parent / "data" / "faq.yaml"

# Below this a question takes the not-found path. Set on tests/faq_questions.py: the in-domain questions
# answered right score above it, the out-of-domain ones below (see docs/faq.md).
MATCH_THRESHOLD = 0.35
# The question's information must be at least this much covered by the best entry, too.
MIN_COVERAGE = 0.30
# Related questions (buttons) must score at least this, and this share of the best score.
RELATED_MIN_SCORE = 0.25
RELATED_MIN_SHARE = 0.55
# An unmatched question's likely topic (for its contact) and "did you mean" buttons need this much.
GUESS_MIN_SCORE = 0.28

# --- normalisation tables ------------------------------------------------------------------------

WORDS_PATH = Path(__file__).parent / "data" / "faq_words.yaml"


@dataclass(frozen=True)
class WordTables:
    """The normalisation tables of storage/data/faq_words.yaml (see its comments)."""

    # Words whose diacritics decide the meaning, mapped before folding (lower case, NFC).
    accented: dict[str, str]
    # Folded phrases -> canonical tokens ("_" gives none, a space two).
    synonyms: dict[str, tuple[str, ...]]
    stopwords: frozenset[str]


@cache
def word_tables() -> WordTables:
    """The word tables, read once (the first question, or the first index built)."""
    # BaseLoader: every word is text, even "no", "on" or "481".
    data = yaml.load(WORDS_PATH.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    return WordTables(
        accented=dict(data["accented_words"]),
        synonyms={token: tuple(phrases) for token, phrases in data["synonyms"].items()},
        stopwords=frozenset(" ".join(data["stopwords"].values()).split()),
    )


# Telex residue of typing with the Vietnamese keyboard switched off: "tieems" -> "tiem", "vawcs" -> "vac".
_TELEX_MARKS = (("aw", "a"), ("aa", "a"), ("ee", "e"), ("oo", "o"), ("ow", "o"), ("uw", "u"), ("dd", "d"))

_TOKEN = re.compile(r"[a-z0-9]+(?:[._][a-z0-9]+)*")
_WORD = re.compile(r"\w+")
_COMMAND = re.compile(r"(?:(?<=\s)|^)/([a-z][a-z_]*)")
_BARE_COMMAND = re.compile(r"(?<![\w/])(?!cmd_)([a-z]+(?:_[a-z]+)+)")


@cache
def _phrases() -> tuple[re.Pattern[str], dict[str, str]]:
    """One regular expression for every phrase (longest first), and what each phrase becomes."""
    replacement: dict[str, str] = {}
    for canonical, phrases in word_tables().synonyms.items():
        for phrase in phrases:
            replacement[" ".join(_TOKEN.findall(phrase)) or phrase] = canonical
    ordered = sorted(replacement, key=lambda phrase: (-len(phrase.split()), -len(phrase)))
    pattern = re.compile(r"(?<![a-z0-9_.])(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![a-z0-9_])")
    return pattern, replacement


def _tag_accented(text: str) -> str:
    accented = word_tables().accented
    return _WORD.sub(lambda m: accented.get(m.group(0), m.group(0)), text)


def analyse(text: str, mend: Callable[[str], str] | None = None) -> list[str]:
    """Canonical tokens of a question or entry text, in order, stop-words removed.

    `mend` may replace each folded word before phrases are joined (typo and Telex repair of questions).
    """
    lowered = unicodedata.normalize("NFC", text).lower()
    # A bot command is a token of its own ("/my" is not the English stop-word) and its word as well.
    lowered = _COMMAND.sub(lambda m: f"cmd_{m.group(1)} {m.group(1).replace('_', ' ')}", lowered)
    # A command typed without its slash ("vaccine_round la gi") is still the command.
    lowered = _BARE_COMMAND.sub(lambda m: f"cmd_{m.group(1)} {m.group(1).replace('_', ' ')}", lowered)
    words = _TOKEN.findall(fold(_tag_accented(lowered)))
    if mend is not None:
        words = [mend(word) for word in words]
    pattern, replacement = _phrases()
    canonical = pattern.sub(lambda m: replacement[m.group(0)], " ".join(words))
    stopwords = word_tables().stopwords
    # A lone letter is a leftover ("school's"), and a bare number a detail ("15 máy", "lớp 7"): the numbers
    # that matter became tokens above ("1ngay", "15h30", "4.8.1").
    return [
        token
        for token in canonical.split()
        if token not in stopwords and len(token) > 1 and not token.isdigit()
    ]


@cache
def known_words() -> frozenset[str]:
    """Words the normalisation itself knows: stop-words and every word of every synonym phrase."""
    tables = word_tables()
    words = set(tables.stopwords)
    for canonical, phrases in tables.synonyms.items():
        words.update(canonical.split())
        for phrase in phrases:
            words.update(_TOKEN.findall(phrase))
    return frozenset(words)


def _bigrams(tokens: Sequence[str]) -> list[str]:
    return [f"{a}+{b}" for a, b in pairwise(tokens) if a != b]


def _telex_readings(word: str) -> list[str]:
    """What a word typed in Telex with the Vietnamese keyboard off may mean: "tieems" -> "tiem".

    The tone key comes last ("vawcs", "hocj"); the marks are doubled letters or a "w" inside the word.
    """
    readings = [word[:-1], word] if word[-1] in "sfrxj" else [word]
    result = []
    for reading in readings:
        for marked, plain in _TELEX_MARKS:
            reading = reading.replace(marked, plain)
        result.append(reading)
    return result


# --- the index -----------------------------------------------------------------------------------


@dataclass
class _Phrasing:
    tokens: frozenset[str]
    text: str  # canonical tokens joined, for rapidfuzz
    norm: float  # length of its IDF vector


@dataclass
class _IndexedEntry:
    entry: FaqEntryOut
    phrase_terms: frozenset[str]  # unigrams and bigrams of the question and its alternatives
    answer_terms: frozenset[str]  # of the answer only
    phrasings: list[_Phrasing] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    entry: FaqEntryOut
    score: float
    coverage: float


# A word only in the answer says less about what the entry answers than one in a phrasing of its question.
ANSWER_TERM_WEIGHT = 0.45
# Weights of the parts of the score (they sum to 1).
COVERAGE_WEIGHT = 0.35
CLOSEST_PHRASING_WEIGHT = 0.30
WORD_PAIRS_WEIGHT = 0.15
FUZZY_WEIGHT = 0.20


class FaqIndex:
    """An immutable index over entries; build a new one when the entries change."""

    def __init__(self, entries: Iterable[FaqEntryOut]) -> None:
        self.entries = list(entries)
        self._indexed: list[_IndexedEntry] = []
        document_frequency: Counter[str] = Counter()
        analysed: list[tuple[list[list[str]], list[str]]] = []
        words = set(known_words())
        for entry in self.entries:
            texts = (entry.question, *entry.alternatives, entry.answer)
            for text in texts:
                words.update(_TOKEN.findall(fold(text)))
            phrasings = [analyse(text) for text in texts[:-1]]
            answer = analyse(entry.answer)
            analysed.append((phrasings, answer))
            terms: set[str] = set()
            for tokens in [*phrasings, answer]:
                terms.update(tokens)
                terms.update(_bigrams(tokens))
            document_frequency.update(terms)
        # Words a question may be mended towards: what the entries and the normalisation tables contain.
        self._words = sorted(word for word in words if len(word) >= 3 and not word.isdigit())
        self._word_set = frozenset(words)
        count = max(len(self.entries), 1)
        self._idf = {term: math.log(1 + count / df) for term, df in document_frequency.items()}
        # A word no entry knows is as informative as the rarest: it lowers the coverage of every entry.
        self._unknown_idf = math.log(1 + count / 0.5)
        for entry, (phrasings, answer) in zip(self.entries, analysed, strict=True):
            phrase_terms: set[str] = set()
            items = []
            for tokens in phrasings:
                unique = frozenset(tokens)
                phrase_terms.update(tokens)
                phrase_terms.update(_bigrams(tokens))
                norm = math.sqrt(sum(self._idf[t] ** 2 for t in unique)) or 1.0
                items.append(_Phrasing(tokens=unique, text=" ".join(tokens), norm=norm))
            answer_terms = (set(answer) | set(_bigrams(answer))) - phrase_terms
            self._indexed.append(
                _IndexedEntry(
                    entry=entry,
                    phrase_terms=frozenset(phrase_terms),
                    answer_terms=frozenset(answer_terms),
                    phrasings=items,
                )
            )

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._unknown_idf)

    def mend(self, word: str) -> str:
        """A known word for an unknown one: Telex residue first, then one wrong, missing or extra letter."""
        if word in self._word_set or len(word) < 3 or not word.isalpha():
            return word
        for reading in _telex_readings(word):
            if reading in self._word_set:
                return reading
        if len(word) >= 5:
            cutoff = 80 if len(word) < 8 else 85
            found = process.extractOne(word, self._words, scorer=fuzz.ratio, score_cutoff=cutoff)
            if found is not None:
                return str(found[0])
        return word

    def terms(self, question: str) -> list[str]:
        """The question's canonical tokens after mending, each once, in order."""
        tokens = analyse(question, self.mend)
        # A class name or code no entry knows ("7a", "79000001") is detail, not a topic.
        return list(dict.fromkeys(t for t in tokens if t in self._idf or not any(ch.isdigit() for ch in t)))

    def search(self, question: str, limit: int = 5) -> list[Candidate]:
        """Entries ranked by score (0..1), best first; empty when the question has no content words."""
        tokens = self.terms(question)
        if not tokens:
            return []
        weight = {token: self.idf(token) for token in tokens}
        mass = sum(weight.values())
        bigrams = [b for b in _bigrams(tokens) if b in self._idf]
        bigram_mass = sum(self._idf[b] for b in bigrams)
        query_norm = math.sqrt(sum(w * w for w in weight.values()))
        query_text = " ".join(tokens)
        candidates = []
        for indexed in self._indexed:
            covered = 0.0
            for token in tokens:
                if token in indexed.phrase_terms:
                    covered += weight[token]
                elif token in indexed.answer_terms:
                    covered += weight[token] * ANSWER_TERM_WEIGHT
            coverage = covered / mass
            if coverage <= 0:
                continue
            pairs = 0.0
            for bigram in bigrams:
                if bigram in indexed.phrase_terms:
                    pairs += self._idf[bigram]
                elif bigram in indexed.answer_terms:
                    pairs += self._idf[bigram] * ANSWER_TERM_WEIGHT
            pair_share = pairs / bigram_mass if bigram_mass else 0.0
            closest = 0.0
            fuzzy = 0.0
            for phrasing in indexed.phrasings:
                shared = sum(weight[t] * self._idf[t] for t in tokens if t in phrasing.tokens)
                closest = max(closest, shared / (query_norm * phrasing.norm))
                fuzzy = max(fuzzy, fuzz.token_sort_ratio(query_text, phrasing.text) / 100)
            score = (
                COVERAGE_WEIGHT * coverage
                + CLOSEST_PHRASING_WEIGHT * closest
                + WORD_PAIRS_WEIGHT * pair_share
                + FUZZY_WEIGHT * fuzzy
            )
            candidates.append(Candidate(entry=indexed.entry, score=round(score, 4), coverage=coverage))
        candidates.sort(key=lambda c: (-c.score, c.entry.key))
        return candidates[:limit]


def is_match(candidate: Candidate | None) -> bool:
    return candidate is not None and candidate.score >= MATCH_THRESHOLD and candidate.coverage >= MIN_COVERAGE


# --- the shipped knowledge base ------------------------------------------------------------------


@cache
def shipped_entries() -> tuple[FaqEntryIn, ...]:
    """The knowledge base shipped in storage/data/faq.yaml, read once."""
    return tuple(parse_knowledge_base(KNOWLEDGE_BASE_PATH.read_bytes()))


def shipped_entry_outs() -> list[FaqEntryOut]:
    return [FaqEntryOut(**entry.model_dump(), source="shipped") for entry in shipped_entries()]
