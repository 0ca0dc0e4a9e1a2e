"""The network: arch name -> backbone factory table, backbones, the plain-torch AudioClassifier, shipped weights."""
