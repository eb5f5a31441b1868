"""The file names of a checkpoint folder."""

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
