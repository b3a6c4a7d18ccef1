"""The built-in TensorFlow adapters: Keras 3, tf_keras (legacy and new) and TF's raw Adam kernels.

All run in this process on the TensorFlow backend and claim the "keras"
dialect (epsilon-hat, TF clip formula, schedules and decay at t - 1); what
each one really does, and where it departs from that, is in its module's
docstring:

=========================  ==================================================  ==============
adapter                    implementation                                      module
=========================  ==================================================  ==============
keras.adam                 keras.optimizers.Adam in tf.function (Model.fit's   _keras3
                           CPU path)
keras.adam.jit             the same in tf.function(jit_compile=True), the      _keras3
                           wrapper Model.fit uses with XLA
keras.adamw                keras.optimizers.AdamW in tf.function               _keras3
tf_keras.legacy.adam       tf_keras.optimizers.legacy.Adam (OptimizerV2), in   _tf_keras
                           tf.function
tf_keras.adam              tf_keras.optimizers.Adam (the 2.11+ optimizer), in  _tf_keras
                           tf.function
tf.raw.apply_adam          tf.raw_ops.ResourceApplyAdam                        _tf_raw
tf.raw.apply_adam_amsgrad  tf.raw_ops.ResourceApplyAdamWithAmsgrad             _tf_raw
=========================  ==================================================  ==============

Importing this module does not import TensorFlow; ``available()`` answers
without importing it either. Keras 3 on another backend (``KERAS_BACKEND``)
makes the keras.* adapters unavailable here: the bridged adapters run it.
"""

from __future__ import annotations

from ._keras3 import Keras3Adam
from ._tf_keras import TFKerasAdam
from ._tf_raw import RawApplyAdam

__all__ = ["ADAPTERS", "Keras3Adam", "RawApplyAdam", "TFKerasAdam"]

ADAPTERS = [
    Keras3Adam("keras.adam"),
    Keras3Adam("keras.adam.jit", jit=True),
    Keras3Adam("keras.adamw", adamw=True),
    TFKerasAdam("tf_keras.legacy.adam", legacy=True),
    TFKerasAdam("tf_keras.adam", legacy=False),
    RawApplyAdam("tf.raw.apply_adam", amsgrad=False),
    RawApplyAdam("tf.raw.apply_adam_amsgrad", amsgrad=True),
]
