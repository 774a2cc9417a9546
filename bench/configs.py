#!/usr/bin/env python3
"""Configurations for the benchmarks, cut from the shipped one (config/portalwatch.yaml).

  configs.py split CONFIG DIR         DIR/00-none.yaml (no detector), then one file per detector
                                      instance, the instance alone (DIR/NN-name.yaml)
  configs.py only CONFIG OUT TYPE...  the configuration with only the detector instances of these
                                      types (their settings as shipped)
"""
import re
import sys


def entries(text):
    """The text before `detectors:` and each instance's lines (comments between them dropped)."""
    head, body = text.split("\ndetectors:\n", 1)
    out = []
    for line in body.split("\n"):
        if line.startswith("  #") or not line.strip():
            continue
        if line.startswith("  - type:"):
            out.append([])
        if out:
            out[-1].append(line)
    return head, ["\n".join(e) for e in out]


def kind(block):
    m = re.search(r"- type: (\w+)(?:\n    name: (\w+))?", block)
    return m.group(1), m.group(2) or m.group(1)


def main(argv):
    if len(argv) >= 3 and argv[0] == "split":
        head, blocks = entries(open(argv[1]).read())
        open(f"{argv[2]}/00-none.yaml", "w").write(head + "\ndetectors: []\n")
        for i, block in enumerate(blocks, 1):
            open(f"{argv[2]}/{i:02d}-{kind(block)[1]}.yaml", "w").write(head + "\ndetectors:\n" + block + "\n")
        return 0
    if len(argv) >= 4 and argv[0] == "only":
        head, blocks = entries(open(argv[1]).read())
        kept = [b for b in blocks if kind(b)[0] in argv[3:]]
        missing = set(argv[3:]) - {kind(b)[0] for b in kept}
        if missing:
            print(f"configs.py: no {', '.join(sorted(missing))} in {argv[1]}", file=sys.stderr)
            return 1
        open(argv[2], "w").write(head + "\ndetectors:\n" + "\n".join(kept) + "\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
