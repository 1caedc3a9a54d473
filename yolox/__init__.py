"""yolox-attention: a YOLOX object detector whose PAFPN neck can apply plug-in attention blocks."""

# The one place of the version (setup.py reads it). The public version is the official YOLOX release whose
# API, flags and checkpoints this package matches; the local part "+attention" marks this package.
__version__ = "0.3.0+attention"
