"""README.rst's runnable parts: the walkthrough as a shell script, the trigger bodies as JSON."""

import json
import pathlib

README = pathlib.Path(__file__).resolve().parents[2] / "README.rst"


def _between(start, end):
    text = README.read_text(encoding="utf-8")
    return text.split(f".. {start}", 1)[1].split(f".. {end}", 1)[0]


def _literal_blocks(part):
    """The indented literal blocks of an RST fragment, each without its indentation."""
    blocks, current = [], None
    for line in part.splitlines():
        if line.startswith("    ") or (current is not None and not line.strip()):
            if current is None:
                current = []
                blocks.append(current)
            current.append(line[4:])
        elif line.strip():
            current = None
    return ["\n".join(block).strip("\n") for block in blocks]


def walkthrough():
    """Every command of the curl walkthrough, in order, as one bash script."""
    return "\n\n".join(_literal_blocks(_between("walkthrough-start", "walkthrough-end"))) + "\n"


def trigger_examples():
    """The complete POST /v1/triggers bodies README shows, in order."""
    return [json.loads(block) for block in _literal_blocks(_between("trigger-examples-start", "trigger-examples-end"))]
