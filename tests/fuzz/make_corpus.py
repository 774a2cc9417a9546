#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (tests/fuzz/corpus/<harness>/) from what the repository already
holds. Run by hand when the sources of seeds change; CI only reads the result.

  tests/fuzz/make_corpus.py PORTALWATCHD

decoder: every line of tests/data/hostile/*.jsonl, the JSON objects in the decoder's unit tests,
         and 200 lines of `portalwatchd simulate` (every action and attack kind of the simulator).
config:  config/portalwatch.yaml, the YAML texts of the unit tests that load configurations
         (broken ones included) and the end-to-end test's configuration files.
control: the request lines of the control protocol's unit tests and of the control integration
         tests.

Files are named by the SHA-1 of their content, as libFuzzer names what it adds, so running this
again adds nothing twice.
"""
import hashlib
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fuzz/corpus"

# A C++ raw string literal: R"delim( ... )delim".
RAW = re.compile(r'R"([a-z]*)\((.*?)\)\1"', re.S)


def raw_literals(path):
    return [m.group(2) for m in RAW.finditer(path.read_text())]


def write(harness, items):
    folder = OUT / harness
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for item in items:
        data = item.encode() if isinstance(item, str) else item
        if not data:
            continue
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        count += 1
    print(f"{harness}: {count} seeds", file=sys.stderr)


def decoder_seeds(portalwatchd):
    seeds = []
    for f in sorted((ROOT / "tests/data/hostile").glob("*.jsonl")):
        seeds += f.read_bytes().split(b"\n")
    seeds += [s for s in raw_literals(ROOT / "tests/unit/decoding_test.cc") if s.lstrip().startswith("{")]
    sim = subprocess.run([portalwatchd, "simulate", "-n", "200", "--seed", "11", "--labels", "-o", "-"],
                         check=True, capture_output=True).stdout
    seeds += sim.split(b"\n")
    return seeds


def config_seeds():
    seeds = [(ROOT / "config/portalwatch.yaml").read_text()]
    for name in ["daemon_config_test.cc", "hooks_config_test.cc", "control_config_test.cc",
                 "policy_test.cc", "geoip_test.cc", "default_config_traps_test.cc"]:
        path = ROOT / "tests/unit" / name
        if path.exists():
            seeds += [s for s in raw_literals(path) if ":" in s and "\n" in s]
    # The end-to-end test's files: here-documents from `cat > "$WORK/x.yaml" <<YAML` to YAML.
    e2e = (ROOT / "tests/e2e/run.sh").read_text()
    seeds += re.findall(r"\.yaml\" <<'?YAML'?\n(.*?)\nYAML\n", e2e, re.S)
    seeds += ["kafka: [unclosed\n", "- 1\n- 2\n", "kafka:\n  group_id: a\n  topics: [x]\n  group_id: b\n"]
    return seeds


def control_seeds():
    seeds = []
    for path in [ROOT / "tests/unit/control_protocol_test.cc", ROOT / "tests/integration/control_test.cc"]:
        seeds += [s for s in raw_literals(path) if s.startswith("{")]
    return seeds


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write("decoder", decoder_seeds(sys.argv[1]))
    write("config", config_seeds())
    write("control", control_seeds())


if __name__ == "__main__":
    main()
