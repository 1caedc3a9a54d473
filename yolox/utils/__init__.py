"""Leaf helpers shared by the models, data, training and evaluation packages.

Import from the submodules directly (for example ``from yolox.utils.boxes import postprocess``):
importing this package stays cheap and free of cycles.
"""
