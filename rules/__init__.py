"""The rule files, shipped inside the package as `engine.rules`: `engine.torch_export_passes()`
runs the bundled `export.rw` by default (`engine.frontends.torch_export.bundled_rules`)."""
