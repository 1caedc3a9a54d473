"""The commands: one module per command, each with ``main(argv: list[str] | None = None) -> int``.

``tools/<command>.py`` forwards to ``yolox.cli.<command>.main``; ``yolox.cli.common`` holds the flags,
the exp building and the error handling every command shares. Nothing below ``yolox.cli`` imports it.
"""
