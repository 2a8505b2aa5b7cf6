"""Who spoke when: speaker turns from voice embeddings of the speech the VAD kept.

While the runner streams the audio, :class:`Diarizer` takes each decoded window with its
speech regions: the regions are joined (silence left out, as Resemblyzer's
``trim_long_silences`` does), cut into partials of 1.6 s every :data:`STEP_FRAMES` x 10 ms and
embedded by the voice encoder (:mod:`.engines.resemblyzer_engine`). Each partial *owns* the
speech nearest its centre inside its own speech region (the speech of a region without a
partial centre goes to the nearest partial), so a change of speaker at a pause falls at the
pause. Only embeddings and times are kept (256 floats per partial), never the audio.

:meth:`Diarizer.finish` clusters the partials (scikit-learn's agglomerative clustering,
cosine distance, average linkage): into ``speakers`` clusters when the caller knows the number,
else cut at :data:`THRESHOLD`; a cluster with less than :data:`MIN_TALK_S` of speech (and less
than a tenth of the total) is folded into the nearest other cluster (one cough does not make a
speaker). Speakers are numbered 1, 2, ... in order of first speech.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from mediafleet.whisper_transcriber.engines.resemblyzer_engine import (
    HOP,
    PARTIAL_FRAMES,
    SR,
    VoiceEncoder,
    mel_spectrogram,
    normalize_volume,
)

#: Hop between partials, in 10-ms frames (0.4 s; Resemblyzer's default rate 1.3/s is 0.77 s):
#: a turn boundary is placed to about half of it.
STEP_FRAMES = 40
#: Each partial is clustered by the mean of itself and its SMOOTH neighbours on each side in the
#: same window (1.6 s of voice says little; 2 x 0.4 s more each side gives 3.2 s of context).
SMOOTH = 2
#: Speech shorter than this in a window gives no partial (too little voice to tell), seconds.
MIN_SPEECH_S = 0.5
#: Cosine distance (1 - cosine similarity) at which clusters stop merging, speakers estimated
#: (the middle of 0.30-0.35, where jfk.flac, FLEURS de and fr alone gave 1 speaker and jfk + de,
#: de + fr and an espeak-ng dialogue gave 2: a sweep on 2026-12-07; bench/asr/diarization.py).
THRESHOLD = 0.325
#: A cluster with less speech than this (and under a tenth of all speech) is not a speaker.
MIN_TALK_S = 2.0
#: Most items clustered at once: agglomerative clustering holds an n x n distance matrix, so
#: beyond this consecutive partials are averaged into groups first (2,000: 32 MB; 4 h of speech
#: gives about 36,000 partials, whose matrix would take 10 GB).
MAX_CLUSTERED = 2000
#: Same-speaker speech separated by at most this is one turn, seconds.
TURN_GAP_S = 1.0


@dataclass(frozen=True)
class Turn:
    """A stretch of one speaker's speech: ``speaker`` 1-based, times in seconds from the start."""

    speaker: int
    start: float
    end: float


@dataclass
class Diarization:
    """The outcome: ``turns`` in time order, ``talk_s[speaker]`` seconds of speech each,
    ``estimated`` whether the number of speakers was estimated (not given)."""

    turns: list[Turn]
    talk_s: dict[int, float]
    estimated: bool
    partials: int
    #: the turns' starts, for bisection (the turns do not change after construction)
    _starts: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._starts = [x.start for x in self.turns]

    def speaker_at(self, t: float) -> int | None:
        """The speaker of the turn holding ``t`` (seconds), else of the nearest turn."""
        if not self.turns:
            return None
        i = bisect.bisect_right(self._starts, t) - 1
        candidates = [self.turns[j] for j in (i, i + 1) if 0 <= j < len(self.turns)]
        return min(
            candidates, key=lambda x: 0.0 if x.start <= t <= x.end else min(abs(t - x.start), abs(t - x.end))
        ).speaker

    def speaker_of(self, start: float, end: float) -> int | None:
        """The speaker with the most speech inside [start, end]; the one at its middle when no
        turn overlaps it."""
        overlap: dict[int, float] = {}
        for turn in self.turns:
            o = min(end, turn.end) - max(start, turn.start)
            if o > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + o
        if overlap:
            return max(overlap, key=overlap.__getitem__)
        return self.speaker_at((start + end) / 2)


def smooth(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Float32 (N, D) unit vectors -> each the L2-normalised mean of itself and its ``k``
    neighbours on each side (fewer at the ends)."""
    if k <= 0 or len(embeddings) < 2:
        return embeddings
    sums = np.cumsum(np.vstack([np.zeros((1, embeddings.shape[1]), embeddings.dtype), embeddings]), axis=0)
    idx = np.arange(len(embeddings))
    lo, hi = np.maximum(idx - k, 0), np.minimum(idx + k + 1, len(embeddings))
    mean = sums[hi] - sums[lo]
    out: np.ndarray = (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)
    return out


@dataclass
class Diarizer:
    """Collects partial embeddings window by window (:meth:`add`), then labels them (:meth:`finish`)."""

    encoder: VoiceEncoder
    embeddings: list[np.ndarray] = field(default_factory=list)
    #: (absolute start s, absolute end s, partial index): the speech each partial owns.
    owned: list[tuple[float, float, int]] = field(default_factory=list)

    def add(self, at: int, audio: np.ndarray, regions: list[tuple[int, int]]) -> None:
        """One window: ``audio`` float32 16 kHz mono starting at absolute sample ``at``, with
        its speech ``regions`` [(start, end)] in samples relative to ``audio``."""
        regions = [(max(0, s), min(len(audio), e)) for s, e in regions if e > s]
        speech = sum(e - s for s, e in regions)
        if speech < MIN_SPEECH_S * SR:
            return
        joined = normalize_volume(np.concatenate([audio[s:e] for s, e in regions]))
        mel = mel_spectrogram(joined)
        frames = len(mel)
        starts = list(range(0, max(frames - PARTIAL_FRAMES, 0) + 1, STEP_FRAMES))
        if frames > PARTIAL_FRAMES and starts[-1] + PARTIAL_FRAMES < frames:
            starts.append(frames - PARTIAL_FRAMES)  # the end is covered too
        if frames < PARTIAL_FRAMES:  # one partial, zero-padded (Resemblyzer pads short utterances)
            mel = np.pad(mel, ((0, PARTIAL_FRAMES - frames), (0, 0)))
        batch = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        first = len(self.embeddings)
        self.embeddings += list(smooth(self.encoder.embed(batch), SMOOTH))
        # partial centres, in samples of the joined speech
        centres = np.array([min(s + PARTIAL_FRAMES // 2, frames) * HOP for s in starts], dtype=np.float64)
        offset = 0
        for s, e in regions:
            inside = np.nonzero((centres >= offset) & (centres < offset + e - s))[0]
            pool = inside if len(inside) else np.arange(len(centres))
            cuts = (
                [offset]
                + [int((centres[a] + centres[b]) / 2) for a, b in zip(pool[:-1], pool[1:], strict=True)]
                + [offset + e - s]
            )
            for k, idx in enumerate(pool):
                lo, hi = max(cuts[k], offset), min(cuts[k + 1], offset + e - s)
                if hi > lo:
                    self.owned.append(
                        ((at + s + lo - offset) / SR, (at + s + hi - offset) / SR, first + int(idx))
                    )
            offset += e - s

    def finish(self, speakers: int | None) -> Diarization:
        """Cluster the partials into speakers (``speakers`` given, or estimated) and build the
        turns. No speech: no turns. One partial, or ``speakers == 1``: one speaker."""
        n = len(self.embeddings)
        if n == 0:
            return Diarization([], {}, speakers is None, 0)
        x = np.stack(self.embeddings)
        if n == 1 or speakers == 1:
            labels = np.zeros(n, dtype=int)
        else:
            from sklearn.cluster import AgglomerativeClustering

            # consecutive partials averaged into groups, so that at most MAX_CLUSTERED are clustered
            size = -(-n // MAX_CLUSTERED)
            group = np.arange(n) // size
            # (a group's sum points where its mean does: cosine distance needs no division)
            items = x if size == 1 else np.add.reduceat(x, np.arange(0, n, size), axis=0)
            if len(items) == 1:
                labels = np.zeros(n, dtype=int)
            else:
                if speakers is not None:
                    model = AgglomerativeClustering(
                        n_clusters=min(speakers, len(items)), metric="cosine", linkage="average"
                    )
                else:
                    model = AgglomerativeClustering(
                        n_clusters=None, distance_threshold=THRESHOLD, metric="cosine", linkage="average"
                    )
                labels = model.fit_predict(items)[group]
            if speakers is None:
                labels = self._fold_small(x, labels)
        owned = sorted(self.owned)
        # number speakers by first speech
        order: dict[int, int] = {}
        for _, _, idx in owned:
            order.setdefault(int(labels[idx]), len(order) + 1)
        turns: list[Turn] = []
        talk: dict[int, float] = {}
        for start, end, idx in owned:
            who = order[int(labels[idx])]
            talk[who] = talk.get(who, 0.0) + end - start
            if turns and turns[-1].speaker == who and start - turns[-1].end <= TURN_GAP_S:
                turns[-1] = Turn(who, turns[-1].start, max(turns[-1].end, end))
            else:
                turns.append(Turn(who, start, end))
        return Diarization(turns, talk, speakers is None, n)

    def _fold_small(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Clusters with too little speech folded into the nearest (cosine, centroids) big one."""
        talk: dict[int, float] = {}
        for start, end, idx in self.owned:
            talk[int(labels[idx])] = talk.get(int(labels[idx]), 0.0) + end - start
        total = sum(talk.values())
        big = [c for c, s in talk.items() if s >= MIN_TALK_S or s >= 0.1 * total]
        if not big:
            big = [max(talk, key=talk.__getitem__)]
        centroids = {c: x[labels == c].mean(axis=0) for c in big}
        out = labels.copy()
        for i, c in enumerate(labels):
            if int(c) not in centroids:
                out[i] = max(
                    centroids, key=lambda k: float(x[i] @ centroids[k]) / float(np.linalg.norm(centroids[k]))
                )
        return out
