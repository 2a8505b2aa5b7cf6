"""Face grouping quality: how well faces are grouped into people, before and after a user corrects them.

A labelled set from the shared corpus (MANIFEST: face re-identification): the 9 one-face
identity images of 6 people (Obama x3, Rob Lowe x2, Biden, Nathalie Baye, Lin-Manuel Miranda,
Alex Lacamoire), each also mirrored, darkened, brightened, halved, turned 10 degrees and
cropped (7 versions), plus the faces of t1.jpg (6 people) and zidane.jpg (2), each its own
person. Faces come from the face_reid runner (real MTCNN + dlib weights); the largest face of
an identity image carries its label, any other face found there a label of its own.

Every image is recorded in a shuffled order (seeded) through the store the fleet uses
(``identities.store_faces``: nearest person at or above the threshold, cannot-link for faces of
one image), at the contract's dlib threshold (cosine 0.93) and, to see the corrections at work,
a looser one (0.90: people merged) and a stricter one (0.98: people split); then:

1. **before**: the grouping as made;
2. **after "not X"**: in every group mixing people, each face not of the group's majority is
   taken out with ``identities.not_person`` (what the web UI's "Not X" does);
3. **after merges**: the groups of one person merged (``identities.merge``) and named;
4. **after a re-clustering**: every unnamed group rebuilt (``identities.recluster``): "not X"
   is remembered (cannot-links with the faces of X at that time), named people stay whole.

Scores: pairwise precision / recall / F1 over face pairs (same group vs same person), and
BCubed precision / recall / F1 (Bagga & Baldwin 1998; Amigó et al., "A comparison of
extrinsic clustering evaluation metrics", 2009), with the user actions each step took.

    python bench/faces/grouping.py [--seed 0] [--media ../shared/media] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediafleet.common.provision import default_cache_dir
from mediafleet.common.store import (
    FaceRow,
    Job,
    Media,
    Person,
    Task,
    User,
    create_db_engine,
    identities,
    migrate,
    session_factory,
)
from mediafleet.face_reid.contract import CAPABILITY, MATCH_THRESHOLDS, FacesResult
from mediafleet.face_reid.runner import FaceReidRunner
from mediafleet.face_reid.settings import FaceReidSettings

ROOT = Path(__file__).resolve().parents[2]
SPEC = CAPABILITY.task("faces")
IDENTITIES = {
    "obama.jpg": "obama", "obama2.jpg": "obama", "obama-480p.jpg": "obama",
    "Rob_Lowe_0001.jpg": "rob_lowe", "Rob_Lowe_0002.jpg": "rob_lowe", "biden.jpg": "biden",
    "Nathalie_Baye_0002.jpg": "nathalie_baye", "lin-manuel-miranda.png": "lin_manuel_miranda",
    "alex-lacamoire.png": "alex_lacamoire",
}  # fmt: skip
CROWDS = ("t1.jpg", "zidane.jpg")


def versions(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    return {
        "original": img,
        "mirrored": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "darker": ImageEnhance.Brightness(img).enhance(0.6),
        "brighter": ImageEnhance.Brightness(img).enhance(1.4),
        "half": img.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
        "turned": img.rotate(10, resample=Image.Resampling.BICUBIC, expand=True),
        "cropped": img.crop((int(w * 0.08), int(h * 0.08), w - int(w * 0.08), h - int(h * 0.08))),
    }


def pairwise(groups: dict[str, str], labels: dict[str, str]) -> tuple[float, float, float]:
    """(precision, recall, F1) over all pairs of faces."""
    ids = sorted(groups)
    tp = fp = fn = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            same_group, same_label = groups[a] == groups[b], labels[a] == labels[b]
            tp += same_group and same_label
            fp += same_group and not same_label
            fn += same_label and not same_group
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def bcubed(groups: dict[str, str], labels: dict[str, str]) -> tuple[float, float, float]:
    """(precision, recall, F1), BCubed: per face, the share of its group with its label and the
    share of its label in its group, averaged over faces."""
    by_group = Counter(groups.values())
    by_label = Counter(labels.values())
    both = Counter((groups[f], labels[f]) for f in groups)
    p = float(np.mean([both[(groups[f], labels[f])] / by_group[groups[f]] for f in groups]))
    r = float(np.mean([both[(groups[f], labels[f])] / by_label[labels[f]] for f in groups]))
    return p, r, 2 * p * r / (p + r)


def snapshot(s: Session) -> dict[str, str]:
    return {f.id: f.person_id or "" for f in s.scalars(select(FaceRow))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--thresholds", type=lambda v: [float(x) for x in v.split(",")], default=[0.9, 0.93, 0.98]
    )
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR")
                        or default_cache_dir() / "test-models"))  # fmt: skip
    args = parser.parse_args()
    runner = FaceReidRunner(FaceReidSettings(core={"models_dir": args.models_dir}))
    runner.preload()
    if runner.ready():
        raise SystemExit(f"bench/faces: {runner.ready()}")
    items: list[tuple[str, dict[str, Any], list[str]]] = []  # (media name, result, label per face)
    for name, who in IDENTITIES.items():
        img = Image.open(args.media / name).convert("RGB")
        for version, out in versions(img).items():
            result = runner.faces(np.asarray(out), {}).model_dump(mode="json")
            faces = result["faces"]
            if not faces:
                print(f"  no face found in {name} ({version}): left out")
                continue
            areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
            largest = int(np.argmax(areas))
            labels = [who if i == largest else f"other:{name}:{version}:{i}" for i in range(len(faces))]
            items.append((f"{name}:{version}", result, labels))
    for name in CROWDS:
        result = runner.faces(np.asarray(Image.open(args.media / name).convert("RGB")), {}).model_dump(
            mode="json"
        )
        items.append((name, result, [f"{name}:{i}" for i in range(len(result["faces"]))]))
    random.Random(args.seed).shuffle(items)

    print(f"# face grouping, {date.today()}, {platform.node()} ({platform.machine()}), MTCNN + dlib, "
          f"seed {args.seed}\n")  # fmt: skip
    for threshold in args.thresholds:
        grouping(items, threshold)
    return 0


def grouping(items: list[tuple[str, dict[str, Any], list[str]]], threshold: float) -> None:
    """Record ``items`` in a fresh store with faces joining at ``threshold``, then the feedback steps."""
    engine = create_db_engine(f"sqlite:///{tempfile.mkdtemp(prefix='bench-grouping-')}/s.db")
    migrate(engine)
    sessions = session_factory(engine)
    labels: dict[str, str] = {}
    with sessions() as s:
        s.add(User(id=1, username="bench", password_hash="x"))
        s.flush()
        for media, result, face_labels in items:
            s.add(Media(id=media, kind="image", mime="image/jpeg", size_bytes=1, storage_path="x"))
            s.flush()
            job = Job(id=str(uuid.uuid4()), user_id=1, media_id=media, status="succeeded", priority="normal")
            task = Task(id=str(uuid.uuid4()), name="faces", status="succeeded", result=result)
            job.tasks.append(task)
            s.add(job)
            s.flush()
            faces = [
                f.model_copy(update={"threshold": threshold})
                for f in SPEC.faces(FacesResult.model_validate(result))
            ]
            rows = identities.store_faces(s, task, 1, media, faces)
            for row, label in zip(rows, face_labels, strict=True):
                labels[row.id] = label
        s.commit()
        contract = " (the contract's)" if threshold == MATCH_THRESHOLDS["dlib"] else ""
        print(
            f"\n## cosine threshold {threshold}{contract}: {len(labels)} faces of {len(set(labels.values()))} people\n"
        )
        print(
            "| step | user actions | groups | pairwise P | pairwise R | pairwise F1 | BCubed P | BCubed R | BCubed F1 |"
        )
        print("|---|---|---|---|---|---|---|---|---|")

        def report(step: str, actions: int) -> None:
            groups = snapshot(s)
            pw, bc = pairwise(groups, labels), bcubed(groups, labels)
            print(f"| {step} | {actions} | {len(set(groups.values()))} | "
                  + " | ".join(f"{v:.3f}" for v in (*pw, *bc)) + " |")  # fmt: skip

        report("before", 0)
        actions = 0
        for _ in range(5):  # "not X" until every group is one person's
            mixed = False
            for person in list(s.scalars(select(Person))):
                faces_in = list(person.faces)
                majority = Counter(labels[f.id] for f in faces_in).most_common(1)[0][0] if faces_in else None
                for face in faces_in:
                    if labels[face.id] != majority:
                        identities.not_person(s, face)
                        actions += 1
                        mixed = True
            s.commit()
            if not mixed:
                break
        report('after "not X"', actions)
        merges = 0
        by_label: dict[str, set[str]] = {}
        for fid, pid in snapshot(s).items():
            by_label.setdefault(labels[fid], set()).add(pid)
        for label, pids in by_label.items():
            if len(pids) > 1:  # merged and named, as the People page does (a name keeps it whole)
                people = [s.get(Person, p) for p in sorted(pids)]
                into, *others = [p for p in people if p is not None]
                identities.merge(s, into, others)
                into.name = label
                merges += 1
        s.commit()
        report("after merges", actions + merges)
        collection = s.scalars(select(FaceRow.collection)).first()
        identities.recluster(s, 1, collection or "")
        s.commit()
        report("after a re-clustering", actions + merges)


if __name__ == "__main__":
    raise SystemExit(main())
