"""Weights and model cards of the models that ship with fscc-sklearn."""
