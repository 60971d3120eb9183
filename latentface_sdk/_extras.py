"""How to install an optional extra, said one way everywhere (error messages, the command's help).

``pip install 'latentface-sdk[video]'`` installs from the package index; from a checkout of the repository
the same extra is ``pip install -e '.[video]'`` (the first form would fetch the published release instead of
the code at hand, or fail where it is not published). :func:`install_hint` gives both;
``tests/test_newcomer.py`` checks that every suggestion in the package names an extra of ``pyproject.toml``
and shows the checkout form.
"""

from __future__ import annotations

#: The optional extras of ``pyproject.toml`` (``[project.optional-dependencies]``).
EXTRAS = ("eval", "ray", "demo", "onnx", "video", "pytorch3d", "dev")


def install_hint(extra: str) -> str:
    """``pip install 'latentface-sdk[EXTRA]' (from a checkout: pip install -e '.[EXTRA]')``; a
    ``ValueError`` for an extra the package does not have."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (the extras: {', '.join(EXTRAS)})")
    return f"pip install 'latentface-sdk[{extra}]' (from a checkout: pip install -e '.[{extra}]')"


__all__ = ["EXTRAS", "install_hint"]
