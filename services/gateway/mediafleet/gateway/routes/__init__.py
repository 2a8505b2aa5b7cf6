"""HTTP routes, one module per resource; thin: validation in schemas, work in services."""
