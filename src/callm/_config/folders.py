"""``private_folder``: callm's folders are its owner's alone, whatever the umask."""

from __future__ import annotations

from pathlib import Path


def private_folder(folder: Path) -> None:
    """Make ``folder`` (and its parents) when missing, readable by its owner only (0700)
    whatever the umask: prompts, replies, spend and keys are nobody else's to read. A folder
    that exists is left as its owner set it."""
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:  # another process made it first
        return
    folder.chmod(0o700)  # mkdir's mode is cut by the umask; chmod's is not
