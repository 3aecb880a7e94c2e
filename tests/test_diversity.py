"""Metrics, final-answer extraction, union-find grouping and the diversity report."""

from __future__ import annotations

import gzip

import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.diversity.answers import answers_match, problem_answer
from taskdiv_chat.diversity.judge import LocalJudge
from taskdiv_chat.diversity.metrics import (
    compression_ratio,
    embedding_diversity,
    extract_final_answer,
    generic_metrics,
    vocabulary_diversity,
)
from taskdiv_chat.diversity.report import DiversityReport, UnionFind, analyze, quick_report, verdict
from taskdiv_chat.diversity.text import normalize_answer

A, D, G = (taxonomy.get(x) for x in "ADG")


# --- union-find --------------------------------------------------------------------------------


def test_union_find_groups_transitively_and_orders_by_first_member():
    uf = UnionFind(6)
    uf.union(4, 1)
    uf.union(1, 3)
    uf.union(5, 2)
    assert uf.groups() == [[0], [1, 3, 4], [2, 5]]
    assert uf.find(4) == uf.find(3) == 1


def test_union_find_with_no_edges_keeps_everyone_apart():
    assert UnionFind(3).groups() == [[0], [1], [2]]
    assert UnionFind(0).groups() == []


# --- generic metrics ------------------------------------------------------------------------------


def test_vocabulary_diversity_is_one_minus_jaccard():
    assert vocabulary_diversity("the red fox", "the red dog") == pytest.approx(1 - 2 / 4)
    assert vocabulary_diversity("Same words", "same WORDS!") == 0.0
    assert vocabulary_diversity("alpha", "beta") == 1.0


def test_compression_ratio_is_raw_over_gzip_bytes():
    texts = ["the cat sat on the mat"] * 5
    raw = "\n".join(texts).encode()
    assert compression_ratio(texts) == pytest.approx(len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0)))
    assert compression_ratio(texts) > compression_ratio(["the cat sat", "quantum flux capacitor", "purple rain"])
    assert compression_ratio([]) == 0.0


def test_embedding_diversity_separates_paraphrase_from_unrelated():
    near = embedding_diversity("The cat is sleeping on the sofa.", "A cat naps on the couch.")
    far = embedding_diversity("The cat is sleeping on the sofa.", "Quarterly tax filings are due in April.")
    assert 0.0 <= near < far <= 2.0


def test_generic_metrics_average_pairs_and_describe_the_newest():
    answers = ["The cat sleeps.", "A cat is sleeping.", "Stock prices fell sharply today."]
    m = generic_metrics(answers)
    vocab_pairs = [vocabulary_diversity(answers[i], answers[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert m["vocabulary_diversity"] == pytest.approx(sum(vocab_pairs) / 3)
    assert m["newest"]["nearest"] in (0, 1)
    assert m["newest"]["embedding_diversity"] > 0.5
    assert generic_metrics(["only one"])["vocabulary_diversity"] is None


# --- final answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Subtract 7 from both sides: 3x = 15. Divide by 3: x = 5.", "5"),
    ("We get 3x = 15.\nAnswer: x = 5", "5"),
    ("The answer is $\\boxed{5}$.", "5"),
    ("Factor: (x - 2)(x - 3) = 0, so x = 2 or x = 3.", "2 3"),
    ("Adding the equations gives 2x = 12; x = 6 and y = 10 - 6 = 4.", "4 6"),
    ("Split it up: 12 × 10 = 120 and 12 × 5 = 60, total 180.", "180"),
    ("40 is 80% of the price; divide 40 by 0.8 to get $50.", "50"),
])
def test_extract_final_answer_for_problems(text, expected):
    assert extract_final_answer(text, D) == expected


@pytest.mark.parametrize("prompt, text, expected", [
    ("What is the capital of Australia?", "Many think it's Sydney, but the capital is Canberra.", "canberra"),
    ("In what year did the Berlin Wall fall?", "It came down on 9 November 1989.", "1989"),
    ("How many continents are there?", "There are seven continents.", "7"),
    ("Is a tomato a fruit?", "Yes, botanically it is.", "yes"),
    ("What gas do plants absorb?", "Carbon dioxide.", "carbon dioxide"),
])
def test_extract_final_answer_for_facts(prompt, text, expected):
    assert extract_final_answer(text, A, prompt) == expected


def test_extract_picks_and_outcomes():
    assert extract_final_answer("Let me think... Ethiopia!", "B", "Name a country in Africa.") == "ethiopia"
    assert extract_final_answer("I rolled the die (1-6) and got a 4.", "C", "Roll a six-sided die.") == "4"
    assert extract_final_answer("You drew the Queen of Hearts.", "C", "Draw a card.") == "q-h"
    assert extract_final_answer("A long story.", G) is None


# --- verdicts ------------------------------------------------------------------------------------


def test_verdict_statuses_follow_what_the_category_wants():
    B = taxonomy.get("B")
    assert verdict(B, 4, 4, None)[0] == "good"
    assert verdict(B, 4, 3, None)[:3:2] == ("warning", "3/4 unique")
    assert verdict(B, 4, 1, None)[0] == "bad"
    assert verdict(A, 3, 1, True) == ("good", verdict(A, 3, 1, True)[1], "answers agree")
    assert verdict(A, 3, 2, False)[0::2] == ("warning", "answers DIFFER")
    assert verdict(D, 3, 3, True)[0] == "good"
    assert verdict(D, 3, 1, True)[0] == "bad"
    assert verdict(D, 3, 3, False)[0::2] == ("warning", "answers DIFFER")
    assert verdict(None, 2, 2, None)[0] == "good"
    assert verdict(G, 1, 1, None)[2] == "1 answer"


# --- analyze -------------------------------------------------------------------------------------


async def test_analyze_groups_repeats_and_flags_the_newest_duplicate():
    answers = [
        "A lighthouse keeper rescued a drowning sailor during a storm and they became lifelong friends.",
        "A dragon who feared fire hid in the mountains until a girl showed it how to warm her village.",
        "During a storm, the keeper of a lighthouse pulled a sailor from the sea; the two stayed friends for life.",
    ]
    report = await analyze("Write a short story.", G, answers, LocalJudge())
    assert report.groups == [[0, 2], [1]]
    assert report.unique == 2 and report.n == 3
    assert report.newest_is_new is False and report.newest_duplicates == 0
    assert report.pairwise[0][2] and not report.pairwise[0][1]
    assert report.status == "warning" and report.badge_text == "2/3 unique"
    assert report.similarity[0][2] > report.similarity[0][1]
    assert report.answers_agree is None


async def test_analyze_reports_disagreeing_final_answers_for_a():
    answers = ["The capital of Australia is Canberra.", "It's Canberra.", "The capital of Australia is Sydney."]
    report = await analyze("What is the capital of Australia?", A, answers, LocalJudge())
    assert report.answers_agree is False
    assert report.final_answers == ["canberra", "canberra", "sydney"]
    assert report.status == "warning" and report.badge_text == "answers DIFFER"
    assert report.groups == [[0, 1], [2]]


async def test_analyze_d_same_answer_two_strategies_is_good():
    answers = ["Subtract 7 from both sides: 3x = 15. Divide by 3: x = 5.",
               "Guess and check: x = 4 gives 19, too small; x = 5 gives 22. So x = 5."]
    report = await analyze("Solve 3x + 7 = 22.", D, answers, LocalJudge())
    assert report.answers_agree is True and report.unique == 2
    assert report.status == "good" and "answers agree" in report.badge_text


async def test_report_round_trips_through_a_dict():
    report = await analyze("Roll a die.", taxonomy.get("C"), ["You rolled a 3.", "It's a 3!"], LocalJudge())
    again = DiversityReport.from_dict(report.to_dict())
    assert again == report
    assert report.unique == 1 and report.status == "bad"


async def test_analyze_with_one_answer_has_nothing_to_compare():
    report = await analyze("Write a poem.", G, ["Roses are red."], LocalJudge())
    assert report.groups == [[0]] and report.newest_is_new is None and report.status == "good"


def test_quick_report_has_generic_metrics_only():
    quick = quick_report(["Kenya.", "Ghana.", "Kenya is in Africa."])
    assert quick["n"] == 3 and len(quick["similarity"]) == 3
    assert quick["generic"]["compression_ratio"] > 0
    assert "groups" not in quick


# --- final answers in real model text (GPT-4o, Claude, Llama, Qwen/DeepSeek with <think>, Mistral, Gemma styles) ---

FINAL_ANSWERS = [
    ('What is 17*23?',
     'so 17*23 is equal to 391',
     '391'),
    ('What is 17*23?',
     '17 × 23 = 17 × 20 + 17 × 3 = 340 + 51 = 391.',
     '391'),
    ('What is 17*23?',
     "Let's break it down:\n\n1. 17 × 20 = 340\n2. 17 × 3 = 51\n3. 340 + 51 = 391\n\nSo, **17 × 23 = 391**.",
     '391'),
    ('What is 17*23?',
     "To find 17*23, I'll multiply: 17*23 = 320. Hmm wait, let me recheck: 17*3 = 51, 17*20 = 340, total 391.",
     '391'),
    ('What is 17*23?',
     'The final answer is: $\\boxed{391}$',
     '391'),
    ('What is 17*23?',
     '<think>17*23... 17*20=340, 17*3=51, 4 digits? no. 391.</think>\n17 × 23 = **391**',
     '391'),
    ('What is 17*23?',
     'Three hundred ninety-one.',
     '391'),
    ('What is 17*23?',
     '17*23 = "320"',
     '320'),
    ('How far does she walk?',
     'She walks 1.5 km each way, so in total:\n\n**Answer:** 3 km',
     '3 km'),
    ('How far does she walk?',
     '**Answer:** 4 km',
     '4 km'),
    ('How far does she walk?',
     'She walks four kilometres in total.',
     '4 km'),
    ('How far does she walk?',
     'Total distance = 2 × 2 km = 4 kilometers.',
     '4 km'),
    ('Solve 3x + 7 = 22.',
     '3x = 15\nx = 5\n\nThe solution is $x = 5$.',
     '5'),
    ('Solve 3x + 7 = 22.',
     'Subtracting 7 gives $3x = 15$, and dividing by 3,\n$$x = \\boxed{5}$$',
     '5'),
    ('Solve x^2 - 5x + 6 = 0.',
     'Factor: (x - 2)(x - 3) = 0, so x = 2 or x = 3.',
     '2 3'),
    ('What is 1/2 + 1/4?',
     '$\\frac{1}{2} + \\frac{1}{4} = \\frac{2}{4} + \\frac{1}{4} = \\boxed{\\frac{3}{4}}$',
     '0.75'),
    ('What is 1/2 + 1/4?',
     'The sum is 3/4 (or 0.75).',
     '0.75'),
    ('What is 15% of 80?',
     '10% of 80 is 8 and 5% is 4, so 15% of 80 is **12**.',
     '12'),
    ('What is 15% of 80?',
     '## Solution\n\n0.15 × 80 = 12\n\n### Final Answer\n12',
     '12'),
    ('How many ways can 3 people sit in a row?',
     'There are 3! = 6 ways.',
     '6'),
    ('How many ways can 3 people sit in a row?',
     'The first seat has 3 choices, the second 2, the last 1: 3 × 2 × 1 = 6 arrangements in total.',
     '6'),
    ('How many ways can 3 people sit in a row?',
     "Listing them: ABC, ACB, BAC, BCA, CAB, CBA. That's six ways.",
     '6'),
    ('A train travels 120 km in 2 hours. What is its speed?',
     'Speed = distance / time = 120 / 2 = 60 km/h.',
     '60 km/h'),
    ('A train travels 120 km in 2 hours. What is its speed?',
     'It goes 60 kilometres per hour.',
     '60 km/h'),
    ('A train travels 120 km in 2 hours. What is its speed?',
     'In one hour it covers half of 120 km, i.e. 60 km, so its speed is sixty km per hour.',
     '60 km/h'),
    ('Is 91 prime?',
     'No. 91 = 7 × 13, so it is not prime.',
     'no'),
    ('What is the sum of the first 10 positive integers?',
     'Using n(n+1)/2 with n = 10: 10 × 11 / 2 = 55.\n\nThe answer is 55.',
     '55'),
    ('What is the sum of the first 10 positive integers?',
     'Pair them: (1+10) + (2+9) + ... = 5 pairs of 11 = 55. I hope this helps! Let me know if you have other questions.',
     '55'),
    ('What is 2^10?',
     '2^10 = 1,024',
     '1024'),
    ('What is 2^10?',
     '\\[2^{10} = 1024\\]',
     '1024'),
    ('What is the remainder when 100 is divided by 7?',
     '100 = 7 × 14 + 2, so the remainder is 2.',
     '2'),
    ('What is the remainder when 100 is divided by 7?',
     '7 × 14 = 98, and 100 − 98 = 2. **Remainder: 2**',
     '2'),
]


@pytest.mark.parametrize("prompt, text, expected", FINAL_ANSWERS)
def test_final_answer_extraction_on_real_style_answers(prompt, text, expected):
    got = problem_answer(text, prompt)
    assert got is not None and answers_match(got, normalize_answer(expected)), (got, expected)


@pytest.mark.parametrize("a, b", [("4 km", "four kilometres"), ("60 km/h", "60 kilometres per hour"), ("$5", "5 dollars"),
                                  ("3/4", "\\frac{3}{4}"), ("391", "three hundred and ninety-one"), ("50%", "50 percent"),
                                  ("✂️", "scissors"), ("⚄", "5"), ("1,024", "1024")])
def test_normalized_answers_match_across_spellings(a, b):
    assert normalize_answer(a) == normalize_answer(b)


@pytest.mark.parametrize("a, b", [("4 km", "5 km"), ("391", "320"), ("3/4", "1/2"), ("rock", "scissors")])
def test_normalized_answers_keep_different_answers_apart(a, b):
    assert not answers_match(normalize_answer(a), normalize_answer(b))

