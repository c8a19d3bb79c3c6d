"""Every warning and error of pneumoclf that a user may catch or filter.

Each is also available where it is raised (``pneumoclf.ImageLoadError``,
``pneumoclf.persistence.ModelFileError``); this module gathers them, as
:mod:`sklearn.exceptions` does.
"""

import os

__all__ = [
    "ImageLoadError",
    "InputCheckWarning",
    "ModelFileError",
    "SiteShiftWarning",
    "UntrainedNetworkWarning",
]


class ImageLoadError(ValueError):
    """Raised when one or more image files cannot be read.

    The message lists every unreadable file with its reason, so that a whole data set
    can be repaired in one pass.

    Parameters
    ----------
    failures : list of (path, str) tuples
        Each unreadable file, as it was given, with the reason it could not be read.
    n_images : int
        How many images were requested in total.

    Attributes
    ----------
    failures : list of (path, str) tuples
        Each unreadable file with its reason, in input order.
    n_images : int
        How many images were requested in total.

    Examples
    --------
    >>> from pneumoclf.exceptions import ImageLoadError
    >>> print(ImageLoadError([("scan.png", "file not found")], n_images=3))
    1 of 3 images could not be read:
      scan.png: file not found
    """

    def __init__(self, failures, n_images):
        self.failures = list(failures)
        self.n_images = n_images
        lines = [f"  {os.fspath(path)}: {reason}" for path, reason in self.failures]
        super().__init__(
            f"{len(self.failures)} of {n_images} images could not be read:\n"
            + "\n".join(lines)
        )

    def __reduce__(self):
        # Keeps the error picklable, as joblib workers send it back to the parent.
        return type(self), (self.failures, self.n_images)


class ModelFileError(ValueError):
    """Raised when a model cannot be saved to, or loaded from, a model file.

    The message names the file or the parameter at fault: a file that is not a
    pneumoclf model file, one of an incompatible format version, a corrupt or
    tampered one, or an estimator that a model file cannot hold.

    Examples
    --------
    >>> from pneumoclf.exceptions import ModelFileError
    >>> issubclass(ModelFileError, ValueError)
    True
    """


class UntrainedNetworkWarning(UserWarning):
    """A fit ended with a network that gives every training image the same output.

    Such a network calls every X-ray the same; ``pneumoclf train`` refuses to save
    it. Turn the warning into an error to refuse it in a search of your own::

        warnings.simplefilter("error", UntrainedNetworkWarning)
    """


class InputCheckWarning(UserWarning):
    """Some images did not pass the input check: they are not chest X-rays like the
    training images (or their DICOM attributes say so), and their label means nothing.

    ``predict`` and ``predict_proba`` still answer for every image; ask
    ``check_inputs`` which ones to leave unlabelled. The command line gives them no
    label.
    """


class SiteShiftWarning(UserWarning):
    """The images of a site differ from the population the model was fitted for.

    :func:`pneumoclf.site.check_site` found a batch unlike the model's reference,
    or :func:`pneumoclf.site.adapt_to_site` found the local figures at the model's
    own threshold unlike its validation figures: its threshold may not hold there.
    """
