"""What `pip install .` ships: every source folder must be a package setuptools finds."""

import pathlib

import setuptools

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ("app", "workers", "schemas", "storage", "doo_webhooks")


def test_every_source_folder_is_a_found_package():
    found = set(setuptools.find_packages(str(ROOT), include=[f"{name}*" for name in SHIPPED]))
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for name in SHIPPED for path in (ROOT / name).rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    }
    assert folders <= found, f"folders without __init__.py: {sorted(folders - found)}"
