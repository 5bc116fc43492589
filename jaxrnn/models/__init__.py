"""Sequence models: thin heads on any jaxrnn layer.

- `SequenceClassifier`, `SequenceRegressor`, `DirectForecaster`: many-to-one (pooled: last / mean / max).
- `Tagger`, `AutoregressiveForecaster`: many-to-many (a read-out at every step).
- `LanguageModel`: character / token language model with temperature / top-k streaming generation.

Each is an immutable config with ``init(key, input_size) -> params`` and
``apply(params, xs, *, lengths=None, carry=None, key=None) -> (outputs, final_carry)``.
"""

from jaxrnn.models.classifier import SequenceClassifier
from jaxrnn.models.dense import Dense
from jaxrnn.models.embedding import Embedding
from jaxrnn.models.forecaster import AutoregressiveForecaster
from jaxrnn.models.language_model import LanguageModel
from jaxrnn.models.losses import masked_mean, sequence_accuracy, sequence_cross_entropy
from jaxrnn.models.pooled import PooledHead
from jaxrnn.models.pooling import final_hidden, pool
from jaxrnn.models.regressor import DirectForecaster, SequenceRegressor
from jaxrnn.models.sampling import sample_logits
from jaxrnn.models.stepwise import StepwiseHead
from jaxrnn.models.streaming import is_causal, layer_step
from jaxrnn.models.tagger import Tagger

__all__ = [
    "AutoregressiveForecaster",
    "Dense",
    "DirectForecaster",
    "Embedding",
    "LanguageModel",
    "PooledHead",
    "SequenceClassifier",
    "SequenceRegressor",
    "StepwiseHead",
    "Tagger",
    "final_hidden",
    "is_causal",
    "layer_step",
    "masked_mean",
    "pool",
    "sample_logits",
    "sequence_accuracy",
    "sequence_cross_entropy",
]
