"""The output tree: every path under an output root, atomic writes, manifest, locks."""
