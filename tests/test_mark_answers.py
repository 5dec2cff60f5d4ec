"""Reading the marks a model selected, from structured and free-text Set-of-Mark answers."""

from __future__ import annotations

import pytest

from inspector.localization.mark_answers import parse_mark_answer

VALID = range(1, 9)


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("Marks 2 and 5 show cracks on the surface.", [2, 5]),
        ("The defect is in region #3.", [3]),
        ("Anomalous: mark 4", [4]),
        ("#6 has a chip at its edge", [6]),
        ("Marks 2, 3 and 7 are anomalous.", [2, 3, 7]),
        ("Marks 2-4 cover the scratch.", [2, 3, 4]),
        ("Mark 1 is normal; mark 4 has a chip.", [4]),
        ("Mark 3 looks fine, but mark 6 shows a blowhole.", [6]),
        ("Regions 1 and 2 are background. Region 5 is a stain.", [5]),
        ("Mark 2 is not normal: it has a dent.", [2]),
        ("Mark 8 is abnormal.", [8]),
        # found by review: a negative word elsewhere in the sentence must not reject the mark
        ("Mark 2 has a crack and the rest are normal.", [2]),
        ("Compared with the normal reference image, mark 4 has a chip.", [4]),
        ("Mark 1 has a crack in the background.", [1]),
        ("Mark 8 shows a crack, nothing else is wrong.", [8]),
        ("Mark 4 has a chip that is not present in the normal references.", [4]),
        ("Anomalous marks: 2, 5", [2, 5]),
        ("Marks 1 through 3 are cracked.", [1, 2, 3]),
        ("No. 3 is cracked.", [3]),
        ("Marks 2-4 are cracked, but mark 3 is fine.", [2, 4]),
    ],
)
def test_free_text_selects_the_marks_named_as_anomalous(text, selected):
    answer = parse_mark_answer(text, VALID)
    assert answer.selected == selected
    assert answer.found and answer.method == "text"
    assert not answer.said_none


@pytest.mark.parametrize(
    "text",
    [
        "None",
        "none.",
        "None of the marks is anomalous.",
        "No marks show a defect; the part is normal.",
        "All marks are normal.",
    ],
)
def test_none_selects_nothing_and_says_so(text):
    answer = parse_mark_answer(text, VALID)
    assert answer.selected == []
    assert answer.said_none and answer.found


def test_an_answer_that_never_mentions_marks_is_not_read_as_none():
    answer = parse_mark_answer("The tile is normal with uniform texture.", VALID)
    assert answer.selected == [] and not answer.said_none and not answer.found


def test_numbers_not_on_the_image_are_reported_not_used():
    answer = parse_mark_answer("Marks 3 and 12 are anomalous.", VALID)
    assert answer.selected == [3]
    assert answer.unknown == [12]


def test_negative_clauses_reject_their_marks():
    answer = parse_mark_answer("Marks 1 and 2 are normal. Mark 5 shows a crack.", VALID)
    assert answer.selected == [5]
    assert answer.rejected == [1, 2]


def test_reason_after_a_colon_is_kept_per_mark():
    answer = parse_mark_answer("Mark 4: crack along the left edge.\nMark 7 - dark stain", VALID)
    assert answer.selected == [4, 7]
    assert answer.reasons == {4: "crack along the left edge", 7: "dark stain"}


def test_numbers_that_are_not_mark_references_are_ignored():
    answer = parse_mark_answer("Anomalous with 90% confidence; the crack is 3 mm long.", VALID)
    assert answer.selected == [] and not answer.found


@pytest.mark.parametrize(
    ("text", "selected", "reasons"),
    [
        (
            '{"anomalous": true, "confidence": 0.8, "reason": "crack", "marks": [{"mark": 2, "reason": "crack"}, '
            '{"mark": 5, "reason": "chip"}]}',
            [2, 5],
            {2: "crack", 5: "chip"},
        ),
        ('{"anomalous": true, "marks": [3, 6]}', [3, 6], {}),
        ('{"anomalous": true, "marks": "2, 4"}', [2, 4], {}),
        ('{"anomalous": true, "anomalous_marks": ["#7"]}', [7], {}),
        ('```json\n{"anomalous": true, "regions": [{"mark": 1, "reason": "hole"}]}\n```', [1], {1: "hole"}),
        ('{"anomalous": true, "marks": [{"id": 8, "explanation": "burr"}]}', [8], {8: "burr"}),
    ],
)
def test_json_answers(text, selected, reasons):
    answer = parse_mark_answer(text, VALID)
    assert answer.method == "json"
    assert answer.selected == selected
    assert answer.reasons == reasons


def test_json_empty_marks_is_an_explicit_none():
    answer = parse_mark_answer('{"anomalous": false, "confidence": 0.9, "reason": "ok", "marks": []}', VALID)
    assert answer.selected == [] and answer.said_none and answer.found


def test_json_without_marks_falls_back_to_the_prose():
    answer = parse_mark_answer('Mark 3 has a crack. {"anomalous": true, "confidence": 0.7}', VALID)
    assert answer.selected == [3] and answer.method == "text"


def test_items_for_locate_carry_the_reason():
    answer = parse_mark_answer('{"marks": [{"mark": 2, "reason": "crack"}]}', VALID)
    assert answer.items() == [{"mark": 2, "reason": "crack"}]


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("Mark 2 - 3 px wide crack.", [2]),
        ("Mark 2 shows a crack 5 mm long.", [2]),
        ("Area 12 px is affected, see mark 3.", [3]),
        ("Areas 1 and 2 of the image look odd; mark 6 has a dent.", [1, 2, 6]),  # "area 2" names a mark too
        ("Mark 5 (confidence 0.9) has a dent.", [5]),
    ],
)
def test_measures_and_other_numbers_are_not_marks(text, selected):
    assert parse_mark_answer(text, VALID).selected == selected


@pytest.mark.parametrize(
    "text",
    ["Mark 3 shows no abnormality.", "Mark 3: nothing abnormal.", "Mark 3 has no crack.", "Mark 3 is not defective."],
)
def test_negated_findings_reject_the_mark(text):
    answer = parse_mark_answer(text, VALID)
    assert answer.selected == [] and answer.rejected == [3]


def test_json_strings_and_boxes_without_numbers():
    answer = parse_mark_answer('{"anomalous": true, "marks": ["mark 3 (0.9)"]}', VALID)
    assert answer.selected == [3] and answer.unknown == []
    boxes = parse_mark_answer(
        '{"anomalous": true, "anomalous_regions": [{"box": [1, 2, 30, 40], "label": "crack"}]}', VALID
    )
    assert boxes.selected == [] and not boxes.said_none


# The wordings real answers use for marks (issue 10): quoted numbers, "area", "label", "tag", "number".
WIDE = range(1, 21)


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ('The region marked as "1" shows a small crack on the rim.', [1]),
        ("The area labeled \u201c2\u201d has a dark stain.", [2]),
        ("The anomaly is located at number 16.", [16]),
        ("The scratch is within label '2'.", [2]),
        ("Area 2 contains a dent.", [2]),
        ("Regions 1 and 2 show contamination.", [1, 2]),
        ("The crack lies in the region labelled [5].", [5]),
        ("Tag number 4 covers a hole in the foil.", [4]),
        ("Segment 7 is where the insulation is torn.", [7]),
        ("The defect can be seen in patch 3 and patch 9.", [3, 9]),
        ("I found a burr on the part marked with the number 12.", [12]),
    ],
)
def test_mark_wordings_of_real_answers(text, selected):
    answer = parse_mark_answer(text, WIDE)
    assert answer.selected == selected, answer


def test_each_mark_is_selected_rejected_or_only_mentioned():
    answer = parse_mark_answer("Mark 1 is normal. Mark 3 covers the edge of the part. Mark 5 has a crack.", VALID)
    assert (answer.selected, answer.rejected, answer.mentioned) == ([5], [1], [3])


@pytest.mark.parametrize(
    "text",
    [
        "Anomalous. See marks 4 and 6.",
        "Mark 3 is the bolt head. Mark 5 is the washer. The image is anomalous because of a scratch at the "
        "bottom edge, outside the marks.",
        "Normal. Mark 3 sits on the edge of the part.",
    ],
)
def test_marks_named_without_judgement_are_only_mentioned(text):
    """Never selected on a guess: such answers get the extraction turn, which asks for the marks."""
    answer = parse_mark_answer(text, VALID)
    assert answer.selected == [] and answer.mentioned and answer.found


def test_falling_within_an_area_is_not_a_fall():
    assert parse_mark_answer("Mark 2 falls within the normal area.", VALID).selected == []


def test_part_is_not_a_mark_noun():
    assert parse_mark_answer("Part 2 of my analysis: mark 4 shows a crack.", VALID).selected == [4]


@pytest.mark.parametrize(
    "text",
    ["The crack is 3 mm long and the affected area 2 cm wide.", "Anomalous with 90% confidence; 12 px wide, 3 stars."],
)
def test_measures_are_not_marks_in_the_new_wordings(text):
    assert parse_mark_answer(text, WIDE).selected == []


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        # an agent's reasoning names several marks; its answer line names its choice
        (
            "Thought: the check-in date is [6] for 1 January and the check-out date [8] for 4 January.\n"
            "Action: Click [6]",
            [6],
        ),
        ("Mark 2 looks like a scratch at first, mark 5 too.\nFinal answer: mark 5", [5]),
        # a bare reply is its own conclusion
        ("Region [3]", [3]),
        ("**Mark 4**", [4]),
        ("Marks 2 and 7.", [2, 7]),
    ],
)
def test_the_conclusion_names_the_choice(text, selected):
    assert parse_mark_answer(text, WIDE).selected == selected


@pytest.mark.parametrize(
    "text",
    [
        "Answer: Normal. Mark 3 sits on the edge of the part.",  # a sentence, not a bare choice
        "Answer: mark 3 is normal.",
    ],
)
def test_a_conclusion_that_is_a_sentence_is_judged_on_its_words(text):
    answer = parse_mark_answer(text, WIDE)
    assert answer.selected == [] and 3 in (answer.mentioned + answer.rejected)


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ('{"action": "tap", "region": 4, "description": "Tap on the text input"}', [4]),
        ('{"click_element": {"index": 15}}', [15]),
        (
            '{"current_state": {"memory": "login"}, "action": [{"input_text": {"index": 2, "text": "admin"}}, '
            '{"click_element": {"index": 5}}]}',
            [2, 5],
        ),
        ('{"target_regions": [17], "predicted_action": "input_text"}', [17]),
        ('{"action": "scroll", "region": 4}', []),  # scrolling acts on no mark
    ],
)
def test_json_actions_name_the_marks_they_act_on(text, selected):
    assert parse_mark_answer(text, WIDE).selected == selected


def test_a_box_id_is_a_mark_reference():
    assert parse_mark_answer("The scratch is inside the box with ID 3.", WIDE).selected == [3]
