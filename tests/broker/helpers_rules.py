"""Writing a rules directory for a test broker (test_31, test_42)."""
import os
import textwrap


def write_rules(directory, rules):
    """Writes {file name: Lua source} into `directory` with the private modes the loader wants."""
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, text in rules.items():
        path = directory / name
        path.write_text(textwrap.dedent(text))
        os.chmod(path, 0o600)
