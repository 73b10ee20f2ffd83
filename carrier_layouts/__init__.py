"""Carrier record layouts as column-mapping TOML files (read by ``tasks.carriers``)."""
