"""crm's own initial migration, so this module can stand in for crm's migrations in a test."""

from importlib import import_module

Migration = import_module("crm.migrations.0001_initial").Migration
