"""Strategy comparison (``medseqft benchmark``): the paper's Table III and VI run through the product.

Modules: ``settings`` (sizes and schedule), ``strategies`` (each strategy as a product
``WorkspaceConfig``), ``workspaces`` (foundation files, init + add-task), ``peft_baselines``
and ``joint`` (the two training modes the product has no command for), ``run`` (resumable
runner over strategies x seeds), ``table`` (Markdown / CSV / plot).
"""
