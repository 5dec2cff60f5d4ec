"""The Qt layer: thin widgets that delegate to `inspector/`."""
