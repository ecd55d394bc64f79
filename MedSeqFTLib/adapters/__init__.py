"""The ``adapter`` task mode: frozen base model, task-owned modules (FSEFT; docs/fewshot.md)."""
