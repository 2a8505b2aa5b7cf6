"""CER arithmetic and the space-aware CTC decoder, on hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from mediafleet.ocr_detection.decode import SpaceAwareCTCDecoder
from mediafleet.ocr_detection.evaluation import cer, edit_distance, normalise


def test_edit_distance_textbook_cases() -> None:
    assert edit_distance("kitten", "sitting") == 3  # the classic example: 2 substitutions + 1 insertion
    assert edit_distance("", "abc") == 3
    assert edit_distance("flaw", "lawn") == 2


def test_cer_normalises_case_and_whitespace() -> None:
    assert normalise("  The  QUICK\n brown\tdog ") == "the quick brown dog"
    assert cer("THE QUICK\nBROWN DOG", "the quick brown dog") == 0.0
    # Dropping the 3 spaces of "the quick brown dog" (19 chars) costs 3/19.
    assert cer("thequickbrowndog", "the quick brown dog") == pytest.approx(3 / 19)
    with pytest.raises(ValueError):
        cer("x", "   ")


def _frames(spec: list[tuple[int, float]], classes: int) -> np.ndarray:
    """Frames whose argmax is the given class; ``p_space`` goes to class ``classes - 1``."""
    out = np.zeros((len(spec), classes), dtype=np.float32)
    for t, (cls, p_space) in enumerate(spec):
        out[t, classes - 1] = p_space
        out[t, cls] = 1.0 - p_space if cls != classes - 1 else 1.0
    return out


def test_space_inserted_only_where_the_space_class_rises() -> None:
    chars = ["blank", "a", "b", "c", " "]  # RapidOCR layout: blank first, space last
    dec = SpaceAwareCTCDecoder(chars, space_threshold=0.02)
    # a a _ b | _(0.30) _ | c : a gap with a raised space score between b and c only
    frames = _frames([(1, 0), (1, 0), (0, 0.001), (2, 0), (0, 0.30), (0, 0.01), (3, 0)], len(chars))
    text, score = dec.decode_one(frames)
    assert text == "ab c"
    assert score == pytest.approx(1.0)


def test_threshold_zero_is_plain_greedy_ctc() -> None:
    chars = ["blank", "a", "b", " "]
    frames = _frames([(1, 0), (0, 0.4), (1, 0), (0, 0.5), (2, 0)], len(chars))
    assert SpaceAwareCTCDecoder(chars, 0.0).decode_one(frames)[0] == "aab"
    assert SpaceAwareCTCDecoder(chars, 0.02).decode_one(frames)[0] == "a a b"


def test_emitted_space_is_not_doubled() -> None:
    chars = ["blank", "a", "b", " "]
    frames = _frames([(1, 0), (0, 0.4), (3, 0), (0, 0.4), (2, 0)], len(chars))
    assert SpaceAwareCTCDecoder(chars, 0.02).decode_one(frames)[0] == "a b"
