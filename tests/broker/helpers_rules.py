"""Writing a rules directory for a test broker, and starting one on it (test_31, test_35, test_42)."""
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


def start_with_rules(broker_factory, tmp_path, rules, config=""):
    """A broker serving `rules` ({file name: Lua source}) from a fresh directory tmp_path/rules
    (kept as b.rules_dir)."""
    d = tmp_path / "rules"
    write_rules(d, rules)
    b = broker_factory(config, ["--rules", str(d)])
    b.rules_dir = d
    return b
