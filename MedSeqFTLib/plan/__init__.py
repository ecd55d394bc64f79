"""Planning a task from its data, the way nnU-Net v2 plans a dataset.

``fingerprint.compute_fingerprint`` reads the labelled cases once and records what planning needs
(spacings, sizes after cropping to the nonzero region, foreground intensities, class sizes);
``spacing.target_spacing`` applies nnU-Net v2's full-resolution target-spacing rule to it.

Nothing is imported here: import the submodules (``from MedSeqFTLib.plan.spacing import
target_spacing``) so that importing the package stays free of SimpleITK and SciPy.
"""
