import pytest

from omnisift.evaluation import extract_choice

OPTIONS = {
    "A": "A cat sleeping on the sofa.",
    "B": "A dog",
    "C": "A red umbrella",
    "D": "None of these appeared in the video",
}
COUNTS = {"A": "3", "B": "4", "C": "5", "D": "6"}
PAIRS = {"A": "2, yes", "B": "2, no", "C": "3, yes", "D": "3, no"}
THREE = {"A": "To the left.", "B": "To the right.", "C": "In front."}

CASES = [
    # bare labels
    ("B", OPTIONS, "B"),
    ("b", OPTIONS, "B"),
    ("(C)", OPTIONS, "C"),
    ("[D].", OPTIONS, "D"),
    ("  A\n", OPTIONS, "A"),
    ("**B**", OPTIONS, "B"),
    ("<answer>C</answer>", OPTIONS, "C"),
    # explicit statements
    ("The answer is B.", OPTIONS, "B"),
    ("The best answer is: D", OPTIONS, "D"),
    ("answer: d", OPTIONS, "D"),
    ("Answer - (C)", OPTIONS, "C"),
    ("The correct option is A.", OPTIONS, "A"),
    ("Final answer: B", OPTIONS, "B"),
    ("I would choose C because the umbrella is red.", OPTIONS, "C"),
    ("I'd go with (a).", OPTIONS, "A"),
    ("The answer is B. A is wrong because no cat appears.", OPTIONS, "B"),
    ("Looking at the video, A and C are unlikely. The answer is D.", OPTIONS, "D"),
    ("Answer: B\nExplanation: option A shows a cat, which never appears.", OPTIONS, "B"),
    ("The answer is B or C.", OPTIONS, None),
    ("The answer is a dog.", OPTIONS, "B"),
    ("My answer would be (b)", OPTIONS, "B"),
    ("Answer: A red umbrella", OPTIONS, "C"),
    ("The answer is A because the cat is asleep.", OPTIONS, "A"),
    ("The answer is a bit unclear.", OPTIONS, None),
    ("The correct answer is (B) a dog, not the umbrella.", OPTIONS, "B"),
    # leading label with text
    ("B. A dog", OPTIONS, "B"),
    ("(C) a red umbrella", OPTIONS, "C"),
    ("C) A red umbrella", OPTIONS, "C"),
    ("D: None of these appeared in the video", OPTIONS, "D"),
    ("B - the dog barks twice", OPTIONS, "B"),
    ("A. Still product bottle", OPTIONS, "A"),
    ("B dog", OPTIONS, "B"),
    # standalone labels in prose
    ("I think C is right.", OPTIONS, "C"),
    ("Based on the audio, it must be D.", OPTIONS, "D"),
    ("Option B matches the scene.", OPTIONS, "B"),
    ("A dog can be seen near the door, so B.", OPTIONS, "B"),
    ("A cat is not present; it is (D).", OPTIONS, "D"),
    # option text alone
    ("A red umbrella", OPTIONS, "C"),
    ("a dog", OPTIONS, "B"),
    ("The woman is holding a red umbrella.", OPTIONS, "C"),
    ("None of these appeared in the video.", OPTIONS, "D"),
    ("There are 4 people on stage.", COUNTS, "B"),
    ("3, no", PAIRS, "D"),
    ("To the right.", THREE, "B"),
    # names no option or several
    ("", OPTIONS, None),
    ("I cannot tell from the video.", OPTIONS, None),
    ("A man walks into the room.", OPTIONS, None),
    ("Both A and C are plausible.", OPTIONS, None),
    ("A. A cat sleeping on the sofa.\nB. A dog\nC. A red umbrella", OPTIONS, None),
    ("It could be a dog or a red umbrella.", OPTIONS, None),
    ("The answer is E.", OPTIONS, None),
    ("The answer is D.", THREE, None),
    ("There are 3 or 4 people.", COUNTS, None),
    ("The Answer Is", OPTIONS, None),
    ("I'm not sure.", OPTIONS, None),
    ("None", OPTIONS, None),
]


@pytest.mark.parametrize(("response", "options", "expected"), CASES)
def test_extract_choice(response, options, expected):
    assert extract_choice(response, options) == expected


def test_case_count():
    assert len(CASES) >= 40


def test_never_reads_first_capital():
    for label in "ABCD":
        assert extract_choice(f"The answer is {label}.", OPTIONS) == label


def test_no_options_gives_none():
    assert extract_choice("B", {}) is None
    assert extract_choice(None, OPTIONS) is None
