#!/usr/bin/env python3
"""Generates docs/OPERATIONS.md's configuration reference from shared/src/defaults.toml.

defaults.toml is the one place every setting gets its default, documented by the comment
lines right above it; this turns those into one markdown table per section (key, environment
variable, default, meaning). The reference sits in docs/OPERATIONS.md between the BEGIN and
END markers below, so it can be regenerated in place:

    deploy/config-reference.py                              # print it
    deploy/config-reference.py --write docs/OPERATIONS.md   # replace it in the file
    deploy/config-reference.py --check docs/OPERATIONS.md   # fail if the file's is stale

Needs Python >= 3.11 (tomllib). deploy/validate.sh runs --check.
"""

import argparse
import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULTS = ROOT / "shared" / "src" / "defaults.toml"
BEGIN = (
    "<!-- BEGIN config-reference: generated from shared/src/defaults.toml by "
    "deploy/config-reference.py; do not edit by hand -->"
)
END = "<!-- END config-reference -->"


def parse(text):
    """Yields (section, key, prose lines, example lines) for every key, in file order."""
    section = ""
    comments = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            comments = []
        elif line.startswith("#"):
            comments.append(line[1:])
        elif line.startswith("["):
            section = line.strip("[]").strip()
            comments = []
        elif "=" in line:
            key = line.split("=", 1)[0].strip()
            # A comment line indented by more than one space is an example (code), the
            # others are prose; a bare `#` separates paragraphs.
            prose = [c.strip() for c in comments if not c.startswith("  ") and c.strip()]
            example = [c[3:] if c.startswith("   ") else c.strip() for c in comments if c.startswith("  ")]
            yield section, key, prose, example
            comments = []


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def cell(text):
    return text.replace("|", "\\|")


def default_cell(value):
    if value == "":
        return "*(empty)*"
    if value == []:
        return "*(none)*"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{toml_value(value)}`"


def reference():
    text = DEFAULTS.read_text(encoding="utf-8")
    values = tomllib.loads(text)
    out = [BEGIN, ""]
    current = None
    examples = []

    def flush_examples():
        for key, lines in examples:
            out.extend(["", f"`{key}` in a configuration file:", "", "```toml", *lines, "```"])
        examples.clear()

    for section, key, prose, example in parse(text):
        if section != current:
            flush_examples()
            if current is not None:
                out.append("")
            title = f"`[{section}]`" if section else "Top level"
            out += [f"### {title}", "", "| key | environment variable | default | meaning |", "|---|---|---|---|"]
            current = section
        dotted = f"{section}.{key}" if section else key
        value = values[section][key] if section else values[key]
        meaning = " ".join(prose) or "—"
        # Lists of tables ([[registries]], [[receiver.basic]]) cannot come from the
        # environment: the config crate does not index lists there.
        if "[[" in meaning or "[[" in "".join(example):
            env = "file only"
        else:
            env = f"`REGSTAT__{section.upper()}__{key.upper()}`" if section else f"`REGSTAT__{key.upper()}`"
            if isinstance(value, list):
                env += " (comma-separated)"
        out.append(f"| `{dotted}` | {env} | {cell(default_cell(value))} | {cell(meaning)} |")
        if example:
            while example and not example[-1].strip():
                example.pop()
            examples.append((dotted, example))
    flush_examples()
    out += ["", END]
    return "\n".join(out) + "\n"


def splice(document, generated):
    start = document.find(BEGIN)
    end = document.find(END)
    if start < 0 or end < start:
        sys.exit(f"config-reference: the document has no {BEGIN!r} ... {END!r} block")
    return document[:start] + generated + document[end + len(END) + 1 :]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="FILE", help="fail if FILE's reference is not current")
    mode.add_argument("--write", metavar="FILE", help="replace FILE's reference")
    args = parser.parse_args()
    generated = reference()
    if args.check:
        path = pathlib.Path(args.check)
        if splice(path.read_text(encoding="utf-8"), generated) != path.read_text(encoding="utf-8"):
            sys.exit(
                f"config-reference: {path}'s configuration reference does not match "
                f"shared/src/defaults.toml; run: deploy/config-reference.py --write {path}"
            )
        print(f"config-reference: {path} is current")
    elif args.write:
        path = pathlib.Path(args.write)
        path.write_text(splice(path.read_text(encoding="utf-8"), generated), encoding="utf-8")
        print(f"config-reference: wrote {path}")
    else:
        sys.stdout.write(generated)


if __name__ == "__main__":
    main()
