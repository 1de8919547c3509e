"""Readers and writers of real data formats."""
