"""Data: reading the public GI endoscopy datasets in their real on-disk layouts.

:mod:`ssl4gie.data.synthetic` writes procedurally generated stand-ins in the same layouts
(``docs/datasets.md``), so tests and smoke runs exercise the real parsing. This package stays
import-light: nothing here imports torch at module level.
"""
