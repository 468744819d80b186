#!/usr/bin/env python3
"""Writes the csmil.toml(5) manual page from etc/csmil.toml, the documented default configuration.

etc/csmil.toml is the one source of every key, its default and its explanation: the comment lines
above a key (or above a run of keys) describe it, the file's opening comment is the page's
description. This script only re-typesets that file as troff (man(7) macros), so the page and the
file cannot disagree; Tests/DaemonTests/ManualPageTests.swift checks that every key csmil knows is
in the page.

Usage: tools/csmil_toml_manpage.py etc/csmil.toml VERSION > csmil.toml.5
"""

import re
import sys

KEY = re.compile(r"^([a-z_][a-z0-9_]*)\s*=\s*(.*)$")
SECTION = re.compile(r"^\[([a-z_][a-z0-9_]*)\]\s*$")


def escape(text, argument=False):
    """Text as troff input: backslashes, minus signs, and a leading dot or quote made literal; in a macro's
    argument, double quotes too."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if argument:
        text = text.replace('"', "\\(dq")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def parse(lines):
    """(intro paragraphs, [(section, [(keys with values, comment paragraphs)])])."""
    intro, sections = [], []
    comment = []
    keys = None  # the run of keys that shares the comment above it
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("#"):
            # "#   example": indented further than the text, kept as it is (a preformatted line).
            text = line[1:].rstrip() if line.startswith("#  ") else line[1:].strip()
            if keys is not None:
                keys = None
                comment = []
            comment.append(text)
            continue
        if not line.strip():
            if not sections:
                intro, comment = comment, []
            continue
        match = SECTION.match(line)
        if match:
            if not sections and comment:
                intro, comment = comment, []
            sections.append((match.group(1), []))
            keys = None
            continue
        match = KEY.match(line)
        if not match or not sections:
            sys.exit(f"csmil_toml_manpage: cannot read this line: {line}")
        if keys is None:
            keys = []
            sections[-1][1].append((keys, paragraphs(comment)))
            comment = []
        keys.append((match.group(1), match.group(2)))
    return paragraphs(intro), sections


def paragraphs(comment):
    """Comment lines joined into paragraphs; an empty comment line separates them. A run of indented lines
    (examples) is one paragraph of its own, a list of lines kept as they are."""
    result, current, example = [], [], []

    def flush():
        if current:
            result.append(" ".join(current))
            current.clear()
        if example:
            result.append(list(example))
            example.clear()

    for text in comment:
        if text.startswith(" "):
            if current:
                flush()
            example.append(text[1:])
        elif text:
            if example:
                flush()
            current.append(text)
        else:
            flush()
    flush()
    return result


def typeset(paragraph):
    """A paragraph as troff lines: text to fill, or examples line by line (no-fill mode)."""
    if isinstance(paragraph, str):
        return [escape(paragraph)]
    return [".nf"] + ["\\&" + escape(line) for line in paragraph] + [".fi"]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    path, version = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as file:
        intro, sections = parse(file)
    # The file's first line is its title ("csmil configuration — …"); the rest describes it.
    out = [
        '.TH CSMIL.TOML 5 "" "csmil %s" "File Formats Manual"' % escape(version),
        ".SH NAME",
        "csmil.toml \\- configuration file of the csmil slide\\-scoring daemon",
        ".SH SYNOPSIS",
        ".B /etc/csmil/csmil.toml",
        ".SH DESCRIPTION",
    ]
    for index, paragraph in enumerate(intro[1:] if len(intro) > 1 else intro):
        if index:
            out.append(".PP")
        out += typeset(paragraph)
    out.append(".PP")
    out.append(
        "Each key below is shown with its default value, as in the default file "
        "/usr/share/doc/csmil/csmil.toml, from which this page is made."
    )
    out.append(".SH KEYS")
    for section, runs in sections:
        out.append(".SS [%s]" % section)
        for keys, text in runs:
            for index, (key, value) in enumerate(keys):
                out.append(".TP" if index == 0 else ".TQ")
                out.append(".B %s" % escape("%s = %s" % (key, value), argument=True))
            for index, paragraph in enumerate(text):
                if index and isinstance(paragraph, str):
                    out.append(".IP")
                out += typeset(paragraph)
    out += [
        ".SH FILES",
        ".TP",
        ".B /etc/csmil/csmil.toml",
        "The configuration that the csmil.service unit passes to \\fBcsmil watch \\-\\-config\\fR.",
        ".SH SEE ALSO",
        ".BR csmil (1),",
        ".BR systemd.service (5)",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
