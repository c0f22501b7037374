"""The committed default head: `head.safetensors` (weights) and `head.json` (metadata).

A package only so that setuptools ships the two files as package data; it
holds no code. Retrain with `moodmoji sentiment train`.
"""
