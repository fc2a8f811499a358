"""ONNX export with a parity check (``ltr export``) and the ONNX Runtime predictor."""
