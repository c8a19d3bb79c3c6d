"""The recipe ``pneumoclf train`` ships, defined once.

:func:`make_pipeline` builds exactly the model that ``pneumoclf train`` trains, for
library users, the command line, the demo, the benchmarks and the docs alike. The
constants below are the recipe's choices, each made on validation patients (see the
Benchmarks page of the documentation).

Importing this module does not load TensorFlow: the command line reads its defaults
from here.
"""

__all__ = [
    "AUGMENTATION",
    "CALIBRATION",
    "DEMO_EPOCHS",
    "DEMO_SPLIT",
    "DEMO_VALIDATION_FRACTION",
    "DROPOUT",
    "EXTERNAL_FIGURES",
    "HEAD",
    "IMAGE_SIZE",
    "TARGET_RECALL",
    "image_file_pipeline",
    "make_pipeline",
    "recipe_params",
]

#: Side, in pixels, the images are resized to: the reference experiment's 64.
IMAGE_SIZE = 64

#: Recall the automatic threshold must reach on the validation patients. The
#: threshold sits at that share of their pneumonia scores: at 0.99 it rested on the
#: four lowest of about 400 and swung from 0.14 to 0.69 between seeds; 0.95 holds
#: the recall a screening needs on separately curated patients, where pneumonia
#: scores as on the validation patients but healthy children score higher. Chosen
#: on an external development set (benchmarks/external.py, the Benchmarks page).
TARGET_RECALL = 0.95

#: Dropout rate before the output layer: on the val patients of three splits it
#: raised the AUC on each (benchmarks/threshold_rule.py --set dropout=0.3).
DROPOUT = 0.3

#: How the last block's feature maps reach the dense layer: each map's mean, which
#: does not depend on where in the frame a feature lies. On an external development
#: set it ranked the healthy children better than the flattened maps of the
#: reference network (benchmarks/external.py; the Benchmarks page), although the
#: synthetic framing shifts of benchmarks/shift.py had ranked it last.
HEAD = "global_average"

#: Augmentation of the training images: zoom and shift twice the classifier's
#: defaults, contrast three times, so that framing and exposure vary as they do
#: between sites. On the val patients of benchmarks/shift.py it raised the worst
#: specificity over shifts from 72% to 84% (a 10% tighter crop: from 72% to 89%).
AUGMENTATION = {"zoom": 0.2, "shift": 0.1, "contrast": 0.3}

#: How the network's output becomes probabilities: Platt scaling fitted on the
#: validation patients, so that the probabilities mean what they say.
CALIBRATION = "platt"

#: What models of this recipe showed on an external development set: trained on
#: the 5,232 images of the Kermany et al. (2018) training folders with seeds 0, 1
#: and 2, each judged at its own threshold on half of the data set's official test
#: split, by patient, curated apart from the training folders (benchmarks/external.py;
#: the Benchmarks page). Per figure and subset (every image; the images of verified
#: provenance): the mean over the seeds, then the lowest and highest bounds of their
#: 95% intervals.
EXTERNAL_FIGURES = {
    "all": {
        "n_images": 312,
        "n_patients": 213,
        "roc_auc": (0.967, 0.942, 0.985),
        "recall": (0.974, 0.928, 0.992),
        "specificity": (0.778, 0.640, 0.872),
    },
    "verified": {
        "n_images": 279,
        "roc_auc": (0.979, 0.960, 0.992),
        "recall": (0.974, 0.928, 0.992),
        "specificity": (0.857, 0.740, 0.925),
    },
}

#: The demo's patient-grouped split of the bundled sample: train, validation, test.
#: The classifier holds out its own validation part of the training images.
DEMO_SPLIT = (0.8, 0.0, 0.2)
#: Largest number of epochs of the demo.
DEMO_EPOCHS = 30
#: Share of the demo's training images held out to stop early and choose the
#: threshold: larger than the recipe's 10%, as the sample is small.
DEMO_VALIDATION_FRACTION = 0.2


def recipe_params():
    """The pipeline parameters of the recipe, as ``make_pipeline`` sets them.

    Returns
    -------
    dict
        ``Pipeline.set_params`` names (``load__*`` for the loader, ``cnn__*``
        for the classifier) of every setting that differs from the defaults of
        :class:`~pneumoclf.ImageLoader` and
        :class:`~pneumoclf.PneumoniaCNNClassifier`.

    Examples
    --------
    >>> from pneumoclf.recipes import recipe_params
    >>> recipe_params()["cnn__target_recall"]
    0.95
    """
    return {
        "load__image_size": IMAGE_SIZE,
        "cnn__threshold": "auto",
        "cnn__target_recall": TARGET_RECALL,
        "cnn__dropout": DROPOUT,
        "cnn__head": HEAD,
        "cnn__calibration": CALIBRATION,
        **{f"cnn__{name}": value for name, value in AUGMENTATION.items()},
    }


def make_pipeline(**params):
    """The pipeline ``pneumoclf train`` trains: image loader and CNN, untrained.

    Parameters
    ----------
    **params
        Pipeline parameters that override the recipe's, by their ``set_params``
        names, for example ``cnn__epochs=10`` or ``load__image_size=96``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``Pipeline([("load", ImageLoader(...)), ("cnn",
        PneumoniaCNNClassifier(...))])`` with the recipe's settings.

    Examples
    --------
    >>> from pneumoclf.recipes import make_pipeline
    >>> pipe = make_pipeline(cnn__epochs=5, cnn__random_state=0)
    >>> pipe.named_steps["cnn"].dropout, pipe.named_steps["load"].image_size
    (0.3, 64)
    """
    from sklearn.pipeline import Pipeline

    from .classifier import PneumoniaCNNClassifier  # loads TensorFlow
    from .preprocessing import ImageLoader

    pipeline = Pipeline([("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier())])
    return pipeline.set_params(**{**recipe_params(), **params})


def image_file_pipeline(estimator):
    """A pipeline that reads image files: ``estimator`` itself, or one around it.

    Parameters
    ----------
    estimator : Pipeline or PneumoniaCNNClassifier
        A fitted pipeline is returned as it is; a fitted classifier gets an
        :class:`~pneumoclf.ImageLoader` of the image size it was trained on.

    Returns
    -------
    sklearn.pipeline.Pipeline

    Raises
    ------
    ValueError
        If the classifier was trained on images of more than one channel, which
        image files read as grayscale cannot give.
    """
    from sklearn.pipeline import Pipeline

    from .preprocessing import ImageLoader

    if isinstance(estimator, Pipeline):
        return estimator
    height, width, channels = estimator.image_shape_
    if channels != 1:
        raise ValueError(
            f"The model expects images of {channels} channels; image files are "
            "read as grayscale, one channel."
        )
    return Pipeline(
        [("load", ImageLoader(image_size=(height, width))), ("cnn", estimator)]
    )
