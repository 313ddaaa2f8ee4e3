"""Signals of bulk_import, for projects that act when an import ends (notify, clean up)."""

from django.dispatch import Signal

#: Sent with ``sender=BulkImport`` and ``bulk_import`` (the record, succeeded or failed) when an
#: import finishes, in the tenant's schema.
bulk_import_finished = Signal()
