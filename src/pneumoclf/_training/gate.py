"""The input check of a fitted network: which images it should not label, and why."""

import warnings

from .. import validity
from ..exceptions import InputCheckWarning

# Refused files named in the warning of predict, at most.
_NAMED = 3


def input_check_results(images, features, reference, paths):
    """Per image, :data:`~pneumoclf.validity.PASSED` or why it is refused.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, c)
        The images as the network takes them.
    features : ndarray of shape (n, dense_units)
        Their penultimate features.
    reference : InputReference or None
        The fitted feature check; None checks the pixels (and DICOM) only.
    paths : sequence of path or None
        The files ``images`` were loaded from, for their DICOM attributes.
    """
    checks = [validity.statistics_reasons(images)]
    if paths is not None:
        checks[:0] = [validity.dicom_reasons(paths), validity.colour_reasons(paths)]
    if reference is not None:
        checks.append(validity.feature_reasons(reference, features))
    return validity.input_check_results(*checks)


def warn_about_refused(results, paths, stacklevel):
    """Warn, naming the first files, when some images did not pass the check."""
    refused = [i for i, result in enumerate(results) if result != validity.PASSED]
    if not refused:
        return
    names = [
        f"{'image ' + str(i) if paths is None else paths[i]} ({results[i]})"
        for i in refused[:_NAMED]
    ]
    more = f" and {len(refused) - _NAMED} more" if len(refused) > _NAMED else ""
    warnings.warn(
        InputCheckWarning(
            f"{len(refused)} of {len(results)} images did not pass the input check "
            f"and should get no label: {'; '.join(names)}{more}. check_inputs "
            "says why for each image."
        ),
        stacklevel=stacklevel + 1,
    )
