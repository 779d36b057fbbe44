"""The image benchmarks (Fashion-MNIST, MNIST, digits) for calosim's generative models.

The models are the ZN ones built for another ``image_shape`` and ``condition_dim``
(calosim.models.base.DataShapeConfig). Images enter a model as they are, in [0, 1]: that
range is the model's "log space", with no count transform, since the pixels are grey
levels rather than photon counts (and log1p of [0, 1] would only squash them). Class
conditions are one-hot labels (``condition_dim`` 10); unconditional models have
``condition_dim`` 0 and take (N, 0) conditions, so no placeholder input exists to ignore.
"""
