"""Optional integrations with other engines; each is imported on its own and needs its extra.

* :mod:`latentface_sdk.integrations.ray`: feature extraction on Ray Data (``pip install
  'latentface-sdk[ray]'``).
* :mod:`latentface_sdk.integrations.demo`: the Gradio demo page (``pip install 'latentface-sdk[demo]'``).

Nothing here is imported by ``import latentface_sdk``: the core install does not need these packages.
"""
