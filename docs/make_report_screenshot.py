"""Make the report-page screenshot and the figures the user guide shows.

Trains the recipe on 80% of the patients of the bundled sample (as ``pneumoclf
demo`` does), writes the report page of the other 20% with
:func:`pneumoclf.report.write_report`, and photographs it in headless Chromium::

    python docs/make_report_screenshot.py            # needs chromium on PATH

Writes ``docs/user_guide/images/report_page.png`` and copies the ROC curve and the
score distributions of that page beside it.
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from sklearn.utils import Bunch

from pneumoclf import load_sample, patient_split
from pneumoclf.plotting import kept_epoch
from pneumoclf.recipes import (
    DEMO_EPOCHS,
    DEMO_SPLIT,
    DEMO_VALIDATION_FRACTION,
    make_pipeline,
)
from pneumoclf.report import model_card, write_report

IMAGES = Path(__file__).parent / "user_guide" / "images"
COPIED_FIGURES = ("roc_curve.png", "score_distributions.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=2600, help="CSS pixels shot")
    args = parser.parse_args()

    data = load_sample()
    train, _, test = patient_split(
        data.paths,
        data.target,
        groups=data.groups,
        sizes=DEMO_SPLIT,
        random_state=args.seed,
    )
    pipeline = make_pipeline(
        cnn__epochs=DEMO_EPOCHS,
        cnn__random_state=args.seed,
        cnn__validation_fraction=DEMO_VALIDATION_FRACTION,
    )
    pipeline.fit(data.paths[train], data.target[train], cnn__groups=data.groups[train])
    classifier = pipeline[-1]
    with tempfile.TemporaryDirectory() as folder:
        page = write_report(
            folder,
            data.target[test],
            pipeline.predict_proba(data.paths[test])[:, 1],
            classifier.threshold_,
            paths=data.paths[test],
            groups=data.groups[test],
            history=classifier.history_,
            kept_epoch=kept_epoch(classifier),
            model_card=model_card(
                pipeline, Bunch(target=data.target[train], groups=data.groups[train])
            ),
            title=f"Bundled sample: {len(test)} held-out patients, seed {args.seed}",
        )
        IMAGES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                "--hide-scrollbars", f"--window-size=1280,{args.height}",
                f"--screenshot={IMAGES / 'report_page.png'}", page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        for name in COPIED_FIGURES:
            shutil.copyfile(Path(folder) / name, IMAGES / name)
    print(f"Wrote {IMAGES / 'report_page.png'} and {', '.join(COPIED_FIGURES)}")


if __name__ == "__main__":
    main()
