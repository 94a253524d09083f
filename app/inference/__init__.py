"""The request path: upload -> pipeline (decode -> integrity -> preprocess -> model -> explain) -> response.

upload.py reads bytes with limits; pipeline.py runs the stages; batcher.py shares forward passes;
serving.py holds a loaded model (PyTorch or ONNX Runtime); catalog.py finds, loads and activates
models; render.py draws heatmaps.
"""
