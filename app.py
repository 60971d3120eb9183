"""The LatentFace demo page, ready for a Hugging Face Space (SDK: gradio) or ``python app.py`` locally.

A Space needs this file and a ``requirements.txt`` with the line ``latentface-sdk[demo]`` (or a
``git+https://...`` URL of this repository with ``#egg=latentface-sdk[demo]``); the bundled weights
come with the package. Locally, ``latentface demo`` serves the same page.
"""

from latentface_sdk.integrations.demo import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
