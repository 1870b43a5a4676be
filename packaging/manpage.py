#!/usr/bin/env python3
"""Writes the man page reconcile(1) from the program's own --help.

    packaging/manpage.py RECONCILE TEMPLATE OUT

TEMPLATE (packaging/reconcile.1.in) is roff holding the prose (description,
exit status, environment, files); its lines @VERSION@, @GLOBAL_FLAGS@ and
@COMMANDS@ are replaced by what `RECONCILE --help` and `RECONCILE CMD --help`
print (CLI11's format: Positionals:, Options:, Subcommands: sections, an
entry per line indented two spaces, long descriptions on the next line), so
the page lists every command and flag the binary has, nested ones
(`import compose`) included. The build runs this after linking; the package
test checks the result against --help independently.

Exit 1 (naming the command) when the binary fails or prints no usage.
"""
import os
import re
import subprocess
import sys


def fail(message):
    print(f"manpage: {message}", file=sys.stderr)
    sys.exit(1)


def help_of(binary, words):
    cmd = [binary, *words, "--help"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                           env={**os.environ, "NO_COLOR": "1"})
    except (OSError, subprocess.TimeoutExpired) as e:
        fail(f"{' '.join(cmd)}: {e}")
    if r.returncode != 0 or "Usage:" not in r.stdout:
        fail(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def parse(text):
    """{'description', 'usage', 'Positionals': [...], 'Options': [...],
    'Subcommands': [...]}, each entry (head, description)."""
    doc = {"description": "", "usage": "", "Positionals": [], "Options": [], "Subcommands": []}
    section = None
    lines = text.splitlines()
    for line in lines:
        if line.startswith("Usage: "):
            doc["usage"] = line[len("Usage: "):].strip()
            continue
        m = re.fullmatch(r"(Positionals|Options|Subcommands):", line.strip())
        if m and not line.startswith(" "):
            section = m.group(1)
            continue
        if section is None:
            if line.strip() and not doc["description"]:
                doc["description"] = line.strip()
            continue
        if not line.strip():
            continue
        if re.match(r"  \S", line):  # a new entry
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            doc[section].append([parts[0], parts[1] if len(parts) > 1 else ""])
        elif doc[section]:  # a continuation: the description on its own line
            entry = doc[section][-1]
            entry[1] = (entry[1] + " " + line.strip()).strip()
    return doc


def esc(text):
    """Roff-escapes running text."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def option(head, description):
    """.TP entry for a CLI11 option head such as '--parallelism INT:INT in
    [1 - 64]=4' or '-v,--verbose'."""
    names, _, spec = head.partition(" ")
    flags = ", ".join(f"\\fB{esc(n)}\\fR" for n in names.split(","))
    out = [".TP", flags + (f" \\fI{esc(spec.strip())}\\fR" if spec.strip() else "")]
    out.append(esc(description) if description else "")
    return out


def command_section(binary, words, out):
    doc = parse(help_of(binary, words))
    name = "reconcile " + " ".join(words)
    usage = doc["usage"].replace("[OPTIONS]", "[flags]")
    out.append(f'.SS "{esc(name)}"')
    out.append(esc(doc["description"]))
    out.append(".PP")
    out.append(f"Usage: \\fB{esc(usage)}\\fR")
    for head, description in doc["Positionals"]:
        out += option(head, description)
    for head, description in doc["Options"]:
        if head.startswith("-h,--help"):
            continue
        out += option(head, description)
    for sub, _ in doc["Subcommands"]:
        command_section(binary, [*words, sub], out)


def main(argv):
    if len(argv) != 4:
        fail("usage: manpage.py RECONCILE TEMPLATE OUT")
    binary, template, out_path = argv[1:]
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[-1]
    except (OSError, subprocess.CalledProcessError, IndexError) as e:
        fail(f"{binary} --version: {e}")
    top = parse(help_of(binary, []))
    if not top["Subcommands"]:
        fail(f"{binary} --help lists no commands")
    global_flags = []
    for head, description in top["Options"]:
        if not head.startswith(("-h,--help", "--version")):
            global_flags += option(head, description)
    commands = []
    for sub, _ in top["Subcommands"]:
        command_section(binary, [sub], commands)

    with open(template, encoding="utf-8") as f:
        lines = f.read().splitlines()
    page = []
    for line in lines:
        if line == "@GLOBAL_FLAGS@":
            page += global_flags
        elif line == "@COMMANDS@":
            page += commands
        else:
            page.append(line.replace("@VERSION@", version))
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(page) + "\n")
    os.replace(tmp, out_path)


if __name__ == "__main__":
    main(sys.argv)
