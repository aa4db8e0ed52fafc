"""Wording shared by the command-line lines."""


def counted(count: int, noun: str) -> str:
    """Return ``'1 pair'`` or ``'3 pairs'``: the count and the noun, plural unless one."""
    return f'{count} {noun}' if count == 1 else f'{count} {noun}s'
