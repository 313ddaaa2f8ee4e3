"""Signals of bulk_import, for projects that act when an import ends (notify, clean up)."""

from django.dispatch import Signal

#: Sent with ``sender=BulkImport`` and ``bulk_import`` (the record, ``succeeded``, ``failed`` or
#: ``cancelled``) once per import when it finishes, in the tenant's schema and inside the
#: transaction that marks it finished: if the worker dies before that commits, the redelivered
#: task sends it again and the receivers' database writes of the lost attempt are rolled back.
#: Use ``transaction.on_commit`` in a receiver for side effects outside the database.
#: bulk_import's own receiver creates the uploader's BulkImportNotification.
bulk_import_finished = Signal()
