"""The model card and the evaluation report page, in a real browser too."""

import base64
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from awkward import PNG_SIGNATURE
from browser import visit
from sklearn.pipeline import Pipeline
from synthetic import blob_images, write_images

import pneumoclf.report as report_module
from pneumoclf import ImageLoader, PneumoniaCNNClassifier, __version__
from pneumoclf.datasets import load_chest_xray
from pneumoclf.metrics import clinical_report, wilson_interval
from pneumoclf.plotting import FIGURE_NAMES
from pneumoclf.recipes import EXTERNAL_FIGURES
from pneumoclf.report import (
    NOT_A_MEDICAL_DEVICE,
    REPORT_NAME,
    _markdown_to_html,
    model_card,
    write_report,
)

MITCHELL_HEADINGS = [
    "Model details",
    "Intended use",
    "Factors",
    "Metrics",
    "Training data",
    "Evaluation data",
    "Quantitative analyses",
    "Ethical considerations",
    "Caveats and recommendations",
]
HOSTILE_NAME = 'IM-0001-0001 <img src=x onerror=alert(1)> & "q".png'


@pytest.fixture(scope="module")
def training_root(tmp_path_factory):
    """A chest_xray/train folder of 48 16x16 images, one per patient."""
    root = tmp_path_factory.mktemp("chest_xray")
    X, y = blob_images(48, 16, seed=3)
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        write_images(root / "train" / name, X[y == label], y[y == label])
    return root


@pytest.fixture(scope="module")
def calibrated_with_groups(training_root, eager_networks):
    data = load_chest_xray(training_root)
    pipeline = Pipeline(
        [
            ("load", ImageLoader(image_size=16)),
            (
                "cnn",
                PneumoniaCNNClassifier(
                    n_conv_blocks=2,
                    filters=4,
                    dense_units=8,
                    epochs=2,
                    threshold="auto",
                    target_recall=0.9,
                    calibration="platt",
                    validation_fraction=0.25,
                    random_state=7,
                ),
            ),
        ]
    )
    return pipeline.fit(data.paths, data.target, cnn__groups=data.groups), data


@pytest.fixture(scope="module")
def card(calibrated_with_groups, training_root):
    pipeline, data = calibrated_with_groups
    return model_card(pipeline, data, data_dir=training_root)


# ------------------------------------------------------------------ model card


def test_the_model_card_follows_the_headings_of_mitchell_et_al(card):
    headings = re.findall(r"^## (.+)$", card, flags=re.MULTILINE)
    assert headings[: len(MITCHELL_HEADINGS)] == MITCHELL_HEADINGS
    assert headings[len(MITCHELL_HEADINGS) :] == ["TRIPOD+AI items in this card"]
    assert card.startswith("# Model card")
    assert NOT_A_MEDICAL_DEVICE in card


def test_the_model_card_describes_the_training_data(card, training_root):
    assert f"48 images from `{training_root}` (folders: `train`)" in card
    assert "NORMAL 24 images of 24 patients, PNEUMONIA 24 images of 24 patients" in card


def test_the_card_warns_when_the_grouping_by_patient_collapsed(calibrated_with_groups):
    pipeline, data = calibrated_with_groups
    collapsed = data.__class__(**{**data, "groups": np.full(len(data.groups), "ANON")})
    card = model_card(pipeline, collapsed)
    assert "every NORMAL and every PNEUMONIA image names the same patient" in card
    assert "grouping by patient collapsed" not in model_card(pipeline, data)


def test_the_card_says_when_the_automatic_threshold_rule_could_not_run(training_root):
    data = load_chest_xray(training_root)
    classifier = PneumoniaCNNClassifier(
        n_conv_blocks=2, filters=4, dense_units=8, epochs=1, threshold="auto",
        random_state=0,
    )  # fmt: skip
    pipeline = Pipeline([("load", ImageLoader(image_size=16)), ("cnn", classifier)])
    few = np.r_[0:6, len(data.target) - 6 : len(data.target)]  # too few to hold out
    with pytest.warns(UserWarning, match="too few to hold out a validation part"):
        pipeline.fit(data.paths[few], data.target[few])
    card = model_card(pipeline, data)
    assert (
        "Threshold rule: none applied: the automatic rule (the threshold with the "
        "best F2 score (recall weighted over precision) among those with a "
        "specificity of at least 50% on the validation part) had no validation "
        "part to run on, so the default threshold was kept" in card
    )


def test_the_card_states_the_automatic_rule_that_was_applied(card):
    assert (
        "Threshold rule: the threshold with the best specificity among those whose "
        "recall on the validation part reaches 90%" in card
    )


def test_names_of_folders_cannot_add_to_the_card_or_the_page(
    calibrated_with_groups, tmp_path
):
    pipeline, data = calibrated_with_groups
    folder = "x\n\n## Regulatory status: cleared by the FDA\n\n`**approved**`"
    card = model_card(pipeline, data, data_dir=folder)
    assert "\n## Regulatory" not in card
    assert (
        "`x\\x0a\\x0a## Regulatory status: cleared by the FDA\\x0a\\x0a'**approved**'`"
        in card
    )
    page = _markdown_to_html(card)
    assert "<h2>Regulatory" not in page and "<strong>approved" not in page


def test_the_model_card_reports_what_the_validation_part_showed(
    calibrated_with_groups, card
):
    classifier = calibrated_with_groups[0][-1]
    report = classifier.validation_report_
    n_pneumonia = report["n_pneumonia"]
    n_normal = report["n_images"] - n_pneumonia
    found = round(report["recall"] * n_pneumonia)
    low, high = wilson_interval(found, n_pneumonia)
    assert (
        f"{report['n_images']} images of {report['n_patients']} patients, none of "
        f"them in the training part, {n_pneumonia} of them pneumonia" in card
    )
    assert (
        f"recall {found / n_pneumonia:.1%} ({found} of {n_pneumonia}; 95% CI "
        f"{low:.1%} to {high:.1%})" in card
    )
    assert f"specificity {report['specificity']:.1%} (" in card
    assert f"of {n_normal};" in card
    assert f"at threshold {classifier.threshold_:.4f}" in card
    assert "reaches 90%" in card  # the threshold rule, with its target
    assert "It chose the epoch whose weights were kept, the calibration and" in card


def test_the_model_card_records_the_recipe_versions_and_seed(card):
    assert "Seed (`random_state`): 7." in card
    assert f"pneumoclf {__version__}" in card
    assert "keras " in card and "scikit-learn " in card
    for setting in ("`cnn__target_recall=0.9`", "`load__image_size=16`"):
        assert setting in card
    assert "Platt scaling fitted on the validation part" in card


def test_the_model_card_states_the_recipes_external_figures(card):
    caveats = card.split("## Caveats and recommendations")[1]
    every, verified = EXTERNAL_FIGURES["all"], EXTERNAL_FIGURES["verified"]
    assert f"{every['n_images']} images of {every['n_patients']} patients" in caveats
    recall, low, high = every["recall"]
    assert (
        f"recall {recall:.1%} (95% intervals of the seeds from {low:.1%} to {high:.1%})"
        in caveats
    )
    assert f"specificity {every['specificity'][0]:.1%}" in caveats
    assert f"ROC AUC {every['roc_auc'][0]:.3f}" in caveats
    assert f"{verified['n_images']} images of verified provenance" in caveats


def test_a_card_without_validation_part_says_so(awkward_pipeline, awkward_root):
    card = model_card(awkward_pipeline, load_chest_xray(awkward_root))
    assert "No validation part was held out" in card
    assert "a fixed threshold of 0.5" in card
    assert "none (the network's own probabilities)" in card


# ------------------------------------------------------------------ markdown


def test_markdown_becomes_escaped_html():
    text = (
        "# Title <b>\n\nA paragraph\nover two lines & more.\n\n"
        "## Part\n\n- **bold** item\n- `code <x>`\n\nAfter."
    )
    assert _markdown_to_html(text).splitlines() == [
        "<h1>Title &lt;b&gt;</h1>",
        "<p>A paragraph over two lines &amp; more.</p>",
        "<h2>Part</h2>",
        "<ul>",
        "<li><strong>bold</strong> item</li>",
        "<li><code>code &lt;x&gt;</code></li>",
        "</ul>",
        "<p>After.</p>",
    ]


# ------------------------------------------------------------------ report page


class _PageParts(HTMLParser):
    """The tags, image sources, links and text of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        for name in ("href", "src"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def evaluation(calibrated_with_groups, tmp_path_factory):
    """Files the model never saw, one with a hostile name, and their scores."""
    pipeline, _ = calibrated_with_groups
    X, y = blob_images(16, 16, seed=11)
    folder = tmp_path_factory.mktemp("held out")
    paths = write_images(folder, X, y)
    hostile = folder / HOSTILE_NAME
    os.rename(paths[0], hostile)
    paths[0] = str(hostile)
    scores = pipeline.predict_proba(np.array(paths))[:, 1]
    # The hostile file is a normal image called pneumonia: a worst error.
    scores[0] = 0.999
    return paths, y, scores


@pytest.fixture(scope="module")
def page(calibrated_with_groups, card, evaluation, tmp_path_factory):
    pipeline, _ = calibrated_with_groups
    paths, y, scores = evaluation
    classifier = pipeline[-1]
    folder = tmp_path_factory.mktemp("report")
    written = write_report(
        folder,
        y,
        scores,
        classifier.threshold_,
        paths=paths,
        history=classifier.history_,
        kept_epoch=2,
        model_card=card,
        title="model <on> held-out",
    )
    return written


def _parts(page):
    parts = _PageParts()
    parts.feed(page.read_text(encoding="utf-8"))
    return parts


@pytest.mark.slow
def test_a_report_that_fails_part_way_leaves_the_earlier_one_whole(
    calibrated_with_groups, evaluation, tmp_path, monkeypatch
):
    pipeline, _ = calibrated_with_groups
    paths, y, scores = evaluation
    history = pipeline[-1].history_
    first = write_report(tmp_path, y, scores, 0.5, paths=paths, history=history)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def failing(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report_module, "_errors_table", failing)
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_report(tmp_path, y, scores[::-1], 0.3, paths=paths)
    after = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert after == before  # no figure of the second run, no staging folder left
    assert first == tmp_path / REPORT_NAME

    monkeypatch.undo()
    write_report(tmp_path, y, scores[::-1], 0.3, paths=paths)  # without history
    assert "training_curves.png" not in {path.name for path in tmp_path.iterdir()}


def test_the_report_page_embeds_every_figure(page):
    assert page.name == REPORT_NAME
    images = _parts(page).images
    assert [image["alt"] for image in images] == [
        name.removesuffix(".png").replace("_", " ") for name in FIGURE_NAMES
    ]
    for image, name in zip(images, FIGURE_NAMES, strict=True):
        prefix, encoded = image["src"].split(",", 1)
        assert prefix == "data:image/png;base64"
        assert base64.b64decode(encoded) == (page.parent / name).read_bytes()
        assert base64.b64decode(encoded).startswith(PNG_SIGNATURE)


def test_the_report_page_needs_no_network(page):
    parts = _parts(page)
    assert parts.links == []
    assert "script" not in parts.tags and "link" not in parts.tags


def test_the_report_page_shows_the_figures_with_their_intervals(
    calibrated_with_groups, evaluation, page
):
    _, y, scores = evaluation
    threshold = calibrated_with_groups[0][-1].threshold_
    report = clinical_report(y, scores, threshold, confidence=0.95, random_state=0)
    text = " ".join(_parts(page).text)
    low, high = report["intervals"]["recall"]
    assert f"Recall {100 * report['recall']:.2f}%" in text
    assert f"sensitivity; 95% CI {100 * low:.2f}% to {100 * high:.2f}%" in text
    assert f"Cases {len(y)}" in text
    assert NOT_A_MEDICAL_DEVICE in text


def test_the_report_page_names_the_worst_errors_safely(page, evaluation):
    paths, _, _ = evaluation
    content = page.read_text(encoding="utf-8")
    parts = _parts(page)
    assert len(parts.images) == len(FIGURE_NAMES)  # the name made no image
    assert "false positive 0.9990" in " ".join(parts.text)
    assert paths[0] in parts.text  # the full name, as text
    assert "<img src=x" not in content


def test_the_report_page_ends_with_the_model_card(page, card):
    headings = re.findall(r"<h2>(.*?)</h2>", page.read_text(encoding="utf-8"))
    assert headings[-len(MITCHELL_HEADINGS) - 1 : -1] == MITCHELL_HEADINGS
    assert "&lt;on&gt;" in page.read_text(encoding="utf-8")  # the escaped title


def test_without_a_card_the_page_says_so(evaluation, tmp_path):
    _, y, scores = evaluation
    page = write_report(tmp_path, y, scores, 0.5)
    text = " ".join(_parts(page).text)
    assert "The model file carries no model card." in text
    assert len(_parts(page).images) == 4  # no history, no files


# ------------------------------------------------------------------ browser


@pytest.mark.browser
def test_the_report_page_renders_in_chromium(chromium, page):
    seen = visit(chromium, page.as_uri(), width=1280)
    assert seen.errors == []
    assert len(seen.images) == len(FIGURE_NAMES)
    for image in seen.images:
        assert image["complete"] and image["naturalWidth"] > 0, image["alt"]
    assert seen.scroll_width <= 1280  # nothing runs off a 1280-px screen


@pytest.mark.browser
def test_the_browser_check_sees_a_broken_page(chromium, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<!DOCTYPE html><img alt="gone" src="missing.png">'
        '<script>console.error("drawn wrong")</script>'
    )
    seen = visit(chromium, broken.as_uri())
    assert seen.images == [{"alt": "gone", "complete": True, "naturalWidth": 0}]
    assert "drawn wrong" in seen.errors
    assert any("ERR_FILE_NOT_FOUND" in error for error in seen.errors)


def test_n_worst_limits_the_errors_shown(tmp_path):
    from PIL import Image

    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"case_{i}.png"))
        Image.new("L", (8, 8), 40 * i).save(paths[-1])
    y = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # every image misjudged
    page = write_report(tmp_path / "report", y, scores, 0.5, paths=paths, n_worst=2)
    rows = re.findall(r"<tr><td>(false \w+)</td><td>([\d.]+)</td>", page.read_text())
    assert rows == [
        ("false negative", "0.1000"),
        ("false negative", "0.2000"),
        ("false positive", "0.9000"),
        ("false positive", "0.8000"),
    ]


def test_the_report_page_shows_the_refer_band_tradeoff(
    calibrated_with_groups, evaluation, page
):
    from pneumoclf.metrics import referral_tradeoff

    _, y, scores = evaluation
    threshold = calibrated_with_groups[0][-1].threshold_
    text = " ".join(_parts(page).text)
    assert "Refer band" in text
    for row in referral_tradeoff(y, scores, threshold):
        assert f"{row['low']:.4f} to {row['high']:.4f} {row['refer_rate']:.1%}" in text
