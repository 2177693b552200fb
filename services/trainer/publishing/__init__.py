"""From trained nets to served models: ``export`` (TorchScript + ONNX, parity-checked),
``publish`` (into the registry, CURRENT by policy), ``bundle`` (into the package as fp16
ONNX) and ``bootstrap`` (the synthetic-shapes demo models)."""
