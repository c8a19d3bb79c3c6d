"""The model file's format: its name, version, members and limits."""

import importlib
import zipfile

FORMAT_NAME = "pneumoclf-model"
# Documented where it is public, in the package's __init__.
FORMAT_VERSION = "2.5"

# Major versions this pneumoclf reads.
_READABLE_MAJORS = ("1", "2")

_METADATA = "metadata.json"
_MODEL = "model.keras"
_MODEL_CARD = "model_card.md"
_SIGNATURE = "signature.hmac"
# Far above any real metadata (a training history of thousands of epochs is a
# few hundred kilobytes); refuses a compressed bomb before it is expanded.
_MAX_METADATA_BYTES = 4 * 1024**2
# Each JSON array or object costs about a hundred bytes of memory: real metadata
# holds a few hundred.
_MAX_METADATA_CONTAINERS = 100_000
# Trained weights hardly compress (deflate saves about a tenth), so a large
# member that expands far beyond its stored size is a decompression bomb; small
# members may compress well.
_MAX_EXPANSION_RATIO = 8
_MIN_CHECKED_EXPANSION_BYTES = 16 * 1024**2
_ENCRYPTED = 0x1
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# Inside model.keras, only the weights are read; the network is rebuilt.
_KERAS_WEIGHTS = "model.weights.h5"
# The weights file holds the float32 weights, at most two optimiser slots per
# weight (Adam's moments) and HDF5's bookkeeping.
_MAX_WEIGHT_FILE_COPIES = 4
_WEIGHT_FILE_OVERHEAD = 1024**2
# Bytes of one label of classes_: far above any real label, far below a memory bomb.
_MAX_ARRAY_ITEM_BYTES = 4096

# The only classes a model file may name: nothing else is ever instantiated.
# Each named by its class and found in its module.
_CLASS_MODULES = {
    "sklearn.pipeline.Pipeline": "sklearn.pipeline",
    "pneumoclf.ImageLoader": "pneumoclf.preprocessing",
    "pneumoclf.PneumoniaCNNClassifier": "pneumoclf.classifier",
}


def model_classes():
    """The classes a model file may name, by the name it gives them.

    Imported on first use: reading a file's card or signature needs none of them.
    """
    return {
        name: getattr(importlib.import_module(module), name.rsplit(".", 1)[1])
        for name, module in _CLASS_MODULES.items()
    }


def class_name(cls):
    """The name a model file gives ``cls``."""
    return {value: name for name, value in model_classes().items()}[cls]


# Stored as None: callbacks act only while training and JSON cannot hold them; a
# pipeline's cache folder belongs to one machine, and could hold pickles.
_UNSAVED_PARAMS = frozenset({"callbacks", "memory"})
