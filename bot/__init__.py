"""Mahalle's application core: config, app assembly, services and the CLI."""
