"""Deployment without PyTorch's networks: ONNX export of the encoders and the disentangle path
(:mod:`~latentface_sdk.deploy.export`), the graphs exported (:mod:`~latentface_sdk.deploy.graphs`), and an
onnxruntime backend with the SDK's crop pipeline and typed results (:mod:`~latentface_sdk.deploy.runtime`).
Needs ``pip install 'latentface-sdk[onnx]'``; nothing here is imported by ``import latentface_sdk``.
"""
