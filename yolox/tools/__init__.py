"""The official YOLOX's module paths of the commands: ``python -m yolox.tools.train`` is ``yolox train``.

Each module forwards to its command in :mod:`yolox.cli`.
"""
