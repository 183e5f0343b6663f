"""Dataset converters and generators (records in, records out)."""
