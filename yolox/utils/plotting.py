"""matplotlib behind one door: the headless backend, or None with the one-line note of what to install."""

from types import ModuleType

PLOT_EXTRA_NOTE = 'pictures need matplotlib: pip install -e ".[plot]"'


def load_pyplot() -> ModuleType | None:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
