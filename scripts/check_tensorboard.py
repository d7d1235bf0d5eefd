"""Reads a run's TensorBoard event files with TensorBoard itself and checks them against
metrics.csv: every epoch's scalars present, equal to the CSV's values (as float32).

Usage: python scripts/check_tensorboard.py RUN_DIR
"""
import csv
import sys
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(run_dir: Path) -> None:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    expected = {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr", "images_per_second"}
    missing = expected - tags
    assert not missing, f"TensorBoard sees no {sorted(missing)} in {run_dir} (it sees {sorted(tags)})"
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    for tag, column in [("train/loss", "train_loss"), ("val/accuracy", "val_accuracy"), ("lr", "lr")]:
        events = accumulator.Scalars(tag)
        assert [e.step for e in events] == [int(r["epoch"]) for r in rows], f"{tag}: steps differ"
        for event, row in zip(events, rows):
            want = np.float32(float(row[column]))
            assert np.float32(event.value) == want, f"{tag} at {event.step}: {event.value} != {want}"
    print(f"TensorBoard reads {len(rows)} epochs of {sorted(tags)} from {run_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
