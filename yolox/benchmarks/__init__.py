"""Measurements: repeated timing and reports (``report``), model latency and training step (``model``), the
data pipeline (``data``). ``yolox.cli.benchmark`` runs them from the command line.
"""
