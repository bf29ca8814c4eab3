"""Multiple-choice answer parsing.

The published evaluation took the first capital letter of a response, so "The answer is B." scored as
"T" (docs/design.md#published-code-defects). This parser looks for an explicit answer statement first, then a leading option label,
then standalone option letters, then the option's own text, and refuses (returns None) whenever the
response names no option or more than one.
"""

from __future__ import annotations

import re
import string

__all__ = ["extract_choice"]

# Phrases after which the chosen label follows ("The answer is B", "answer: d", "I'd go with (C)").
_CUE = (
    r"(?:(?:final|correct|best|right|most\s+likely|my)\s+)+(?:answer|option|choice)|answer"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|=))?"
    r"|(?:i\s+(?:would\s+)?(?:choose|chose|pick|select|go\s+with)|i\s*'d\s+(?:choose|pick|select|go\s+with))"
)
_LIST_SEP = r"\s*(?:,|/|&|\bor\b|\band\b|\+)\s*"
_VERB_AFTER_LABEL = (
    r"\s+(?:and|or|nor|is|are|was|were|seems|would|could|might|must|should|can|matches|fits|looks)\b"
)
_MARKUP = re.compile(r"[*_`#]+|</?(?:answer|ans|choice)>", re.IGNORECASE)


def _normalise_text(text: str) -> str:
    """Lower-case, drop punctuation and a leading article: for comparing option texts."""
    text = text.lower().replace("’", "'")
    text = text.translate(str.maketrans({c: " " for c in string.punctuation if c not in "'"}))
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"^(?:a|an|the) ", "", text)


def _labels_pattern(labels: list[str]) -> str:
    return "[" + "".join(re.escape(label) for label in labels) + "]"


def _option_at(text: str, options: dict[str, str]) -> str | None:
    """The option whose full text `text` starts with ("a red umbrella, clearly" -> the umbrella's label)."""
    norm = _normalise_text(text)
    best, size = None, 0
    for label, option in options.items():
        own = _normalise_text(option)
        if own and (norm == own or norm.startswith(own + " ")) and len(own) > size:
            best, size = label, len(own)
    return best


def _explicit(text: str, options: dict[str, str]) -> set[str] | None:
    """Labels named right after an answer cue ("answer: B or C" gives {B, C}); None if no cue.

    "Answer: A red umbrella" names the umbrella's option, not A; "The answer is A because ..." names A.
    """
    lab = _labels_pattern(list(options))
    one = rf"[\(\[]?({lab})[\)\]]?"
    pattern = re.compile(
        rf"(?:{_CUE})\s*(?:[:\-–—=]\s*|\s)\s*{one}((?:{_LIST_SEP}{one})*)(?![a-z0-9'])",
        re.IGNORECASE,
    )
    found: set[str] = set()
    for match in pattern.finditer(text):
        label = match.group(1)
        wrapped = text[match.start(1) - 1 : match.start(1)] in ("(", "[")
        if not wrapped and re.match(r"\s+[a-z]", text[match.end(1) :]):
            named = _option_at(text[match.start(1) :], options)
            if named is not None:  # the label letter is the article of an option's text
                found.add(named)
                continue
            if label.islower():
                continue  # "the answer is a bit unclear": an article, not a label
        found.add(label.upper())
        for extra in re.findall(lab, match.group(2) or "", flags=re.IGNORECASE):
            found.add(extra.upper())
    return found or None


def _listed_labels(text: str, labels: list[str]) -> set[str]:
    """Labels that start a line as "B." / "(B)" / "B)": the response reciting option lines."""
    lab = _labels_pattern(labels)
    return {m.upper() for m in re.findall(rf"(?m)^\s*[\(\[]?({lab})[\.\):\]]", text)}


def _leading(text: str, labels: list[str], options: dict[str, str]) -> str | None:
    """A response opening with an option label: "B", "B.", "(C) a dog", "b) ...", "D: text"."""
    lab = _labels_pattern(labels)
    match = re.match(rf"^\s*[\(\[]\s*({lab})\s*[\)\]]", text, re.IGNORECASE)
    if match:
        return match.group(1).upper()
    match = re.match(rf"^\s*({lab})\s*(?:[\.\):]|$|\s*[\-–—,]\s)", text)
    if match:
        return match.group(1)
    match = re.match(rf"^\s*({lab})\s+(\S.*)$", text, re.DOTALL)
    if match:
        # "B the dog" is a label; "A man walks in" is an article. Accept only if the rest is the option.
        rest = _normalise_text(match.group(2))
        own = _normalise_text(options.get(match.group(1), ""))
        if own and (rest.startswith(own) or own.startswith(rest)):
            return match.group(1)
    return None


def _standalone(text: str, labels: list[str]) -> set[str]:
    """Upper-case labels standing alone as a token, skipping "A" used as an article or "I" as a pronoun."""
    lab = _labels_pattern(labels)
    found: set[str] = set()
    for match in re.finditer(rf"(?<![A-Za-z0-9'’\-])({lab})(?![A-Za-z0-9'’\-])", text):
        label = match.group(1)
        after = text[match.end() :]
        if label in ("A", "I") and re.match(r"\s+[a-z]", after) and not re.match(_VERB_AFTER_LABEL, after):
            continue  # "A dog", "I think" (but "A and C", "A is right" name labels)
        if re.match(r"'", after):
            continue
        found.add(label)
    return found


def _text_matches(text: str, options: dict[str, str]) -> set[str]:
    """Options whose full text appears in the response (whole words); a text inside a longer match loses."""
    norm = f" {_normalise_text(text)} "
    hits = {}
    for label, option in options.items():
        own = _normalise_text(option)
        if own and f" {own} " in norm:
            hits[label] = own
    return {
        label
        for label, own in hits.items()
        if not any(other != own and own in other for other in hits.values())
    }


def extract_choice(response: str | None, options: dict[str, str]) -> str | None:
    """Return the option label a free-text response picks, or None if it names none or several.

    `options` maps label (e.g. "A") to option text, as `load_benchmark` gives it. Labels are
    matched case-insensitively only where the context makes them unambiguous ("answer: d", "(c)").
    """
    if not response or not options:
        return None
    labels = sorted(options, key=len, reverse=True)
    if any(len(label) != 1 for label in labels):
        raise ValueError(f"option labels must be single characters, got {sorted(options)}")
    text = _MARKUP.sub("", response).strip()
    if not text:
        return None

    # 1. The whole response is one label, perhaps wrapped: "B", "(b)", "[C].", "D)".
    whole = re.fullmatch(rf"\W*({_labels_pattern(labels)})\W*", text, re.IGNORECASE)
    if whole:
        return whole.group(1).upper()

    # 2. An explicit answer statement wins over everything else.
    explicit = _explicit(text, options)
    if explicit is not None:
        return next(iter(explicit)) if len(explicit) == 1 else None

    # 3. A response that recites two or more option lines names several options.
    if len(_listed_labels(text, labels)) > 1:
        return None

    # 4. A leading label: "B. Facial treatment ...", "(C) a dog".
    leading = _leading(text, labels, options)
    if leading is not None:
        return leading

    # 5. Standalone labels anywhere: "I think C is right."
    standalone = _standalone(text, labels)
    if len(standalone) == 1:
        return next(iter(standalone))
    if len(standalone) > 1:
        return None

    # 6. The option's own text, without its label.
    matches = _text_matches(text, options)
    return next(iter(matches)) if len(matches) == 1 else None
