"""The declarations the pipeline runs on, read from package data: contracts, tables, terminology, the batch lifecycle, dataset definitions and the check catalogue.
Imports only `medgov.errors`: everything else may read it, nothing here runs Spark."""
