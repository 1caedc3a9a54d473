"""yolox-attention: a YOLOX object detector whose PAFPN neck can apply plug-in attention blocks."""

__version__ = "0.1.0"
