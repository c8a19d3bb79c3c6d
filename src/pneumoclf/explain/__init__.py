"""Heat maps: where in an X-ray the network found evidence of pneumonia.

:func:`heatmaps` computes the maps of a fitted
:class:`~pneumoclf.PneumoniaCNNClassifier`, or a pipeline ending in one, by one of
three methods; :func:`gradcam` is its Grad-CAM; :func:`overlay_heatmap` draws a
map over its image and :func:`save_overlays` writes one such picture per image
file.

* **Integrated gradients** (Sundararajan et al., 2017), the default: the gradient
  of the pneumonia logit averaged along the straight path from a black image to
  the image, times the image. Maps at pixel resolution; on synthetic lesions the
  hottest pixel fell on the lesion for 94% of positives (``benchmarks/explain.py``),
  and on real X-rays of the bundled sample the heat lies in the lung fields.
* **Grad-CAM** (Selvaraju et al., 2017): each channel of a convolutional feature
  map weighted by the mean gradient of the logit over it, summed and rectified.
  The map has the resolution of that feature map, a few cells across for the last
  convolution, so it shows roughly *where* the network looked; on this network it
  often lights the spine and mediastinum.
* **Occlusion**: the drop of the logit when a square of the image is greyed out;
  model-agnostic and slow (one forward pass per square).

A map tells what the network used, not what is clinically right: heat on a text
marker or a corner of the film reveals a shortcut, not a finding.

References
----------
Sundararajan M, Taly A, Yan Q. *Axiomatic Attribution for Deep Networks*. ICML
2017. arXiv:1703.01365.

Selvaraju RR, Cogswell M, Das A, Vedantam R, Parikh D, Batra D. *Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization*. ICCV 2017.
doi:10.1109/ICCV.2017.74.

Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. *Sanity Checks for
Saliency Maps*. NeurIPS 2018. The tests check every method against both of its
randomisation tests.
"""

from ._maps import METHODS, gradcam, heatmaps
from ._overlays import labelled_overlay, overlay_heatmap, plot_heatmaps, save_overlays

__all__ = [
    "METHODS",
    "gradcam",
    "heatmaps",
    "labelled_overlay",
    "overlay_heatmap",
    "plot_heatmaps",
    "save_overlays",
]

# The public names are documented, pickled and shown as this package's own.
for _name in __all__:
    if callable(globals()[_name]):
        globals()[_name].__module__ = __name__
del _name
