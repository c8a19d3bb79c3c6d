"""Private: parameter descriptions written once, filled into the docstrings.

A docstring names a field on a line of its own, ``%(name)s``, indented as the
text should be; :class:`Substitution` replaces that line with the description,
as imbalanced-learn's ``Substitution`` does.
"""

import re
import textwrap

_FIELD = re.compile(r"^( *)%\((\w+)\)s$", flags=re.MULTILINE)


class Substitution:
    """Decorator that fills the ``%(name)s`` lines of a docstring.

    Parameters
    ----------
    **descriptions : str
        The text of each field, without indentation.
    """

    def __init__(self, **descriptions):
        self.descriptions = descriptions

    def __call__(self, documented):
        documented.__doc__ = _FIELD.sub(self._description, documented.__doc__)
        return documented

    def _description(self, field):
        indent, name = field.groups()
        return textwrap.indent(self.descriptions[name].strip(), indent)


#: The network's parameters, as ``PneumoniaCNNClassifier`` and ``build_cnn`` take them.
NETWORK_PARAMETER_DOCS = {
    "n_conv_blocks": "Number of blocks of convolution, ReLU and 2x2 max pooling.",
    "filters": "Filters of every convolution.",
    "kernel_size": "Side of the square convolution kernels.",
    "dense_units": "Units of the hidden dense layer.",
    "dropout": "Dropout rate between the hidden dense layer and the output.",
    "batch_norm": "Whether each convolution is followed by batch normalisation.",
    "padding": """
Convolution and pooling padding. ``"auto"`` is ``"valid"`` (the
reference) when every block keeps at least one pixel of the image,
``"same"`` otherwise, so that small images and one-row tables still
pass through the network.""",
    "head": """
How the last block's feature maps reach the dense layer: all of them,
flattened (the reference network), or each map's mean
(``GlobalAveragePooling2D``), which ignores where in the image a
feature lies and has ``filters`` inputs instead of ``h * w * filters``.""",
    "optimizer": "Optimiser name.",
    "learning_rate": "Initial learning rate.",
    "label_smoothing": """
Training targets of 0 and 1 moved towards 0.5 by this share (0.1 trains
on 0.05 and 0.95), for labels that may be wrong. The probabilities are
then less extreme: calibrate them.""",
    "rotation": """
Largest random rotation while training, as a fraction of a full turn
(0.05 is 18 degrees).""",
    "zoom": "Largest random zoom in or out while training, as a fraction of the side.",
    "shift": "Largest random translation while training, as a fraction of the side.",
    "contrast": """
Largest random contrast change factor while training, for images
scaled to [0, 1].""",
    "blur": """
Largest standard deviation, in pixels of the network's input, of a
random Gaussian blur given to about half of the training images (a
strength drawn per batch up to it), so that sharpness, which differs
between X-ray machines and sites, is not learnt as a sign of either
class. 0 blurs nothing.""",
}
