"""Raw audio -> windows -> model(s) -> CSVs: run folders or ONNX files as Scorers, export, Ray, AudioSet tags."""
