"""Backbones, SSL pretexts and checkpoint handling.

The pipeline only needs four things from a backbone (see ``segnet.SegNet``): an encoder that
returns its multi-scale outputs, a decoder, a 1x1x1 head, and an SSL head for MDS scoring.
``registry`` builds them from an ``ArchConfig``. Submodules import torch/MONAI, so this
package file stays empty of imports to keep ``medseqft --help`` fast.
"""
