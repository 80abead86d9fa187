"""nuseal.cli.regexes: the seeded pattern objects are exactly what ``re`` compiles, the seed is current for this
Python and cryptography, and a seed made by another engine is never used."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from nuseal.cli import regex_seed, regexes


def _fresh_process(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.parametrize("row", regex_seed.ROWS, ids=lambda row: repr(row[0][:40]))
def test_every_seeded_pattern_equals_a_fresh_compile(row: tuple[object, ...]) -> None:
    import _sre
    from re import _compiler  # type: ignore[attr-defined]

    pattern, flags, full_flags, program, groups, groupindex, indexgroup = row
    seeded = _sre.compile(pattern, full_flags, program, groups, groupindex, indexgroup)
    fresh = _compiler.compile(pattern, flags)  # not re.compile: that could answer from the cache
    assert seeded == fresh  # pattern objects compare flags, text and the whole program
    assert seeded.groupindex == fresh.groupindex and seeded.groups == fresh.groups


def test_the_seed_is_current_for_this_python_and_cryptography() -> None:
    made = json.loads(_fresh_process(
        "from nuseal.cli import regexes\nrows = regexes.compiled_by_verify_path()\n"
        "import json\nprint(json.dumps(rows))\n"))  # json after: its own patterns are not the verify path's
    stored = json.loads(json.dumps(regex_seed.ROWS))  # tuples as lists, as json gives them back
    missing = [row[0] for row in made if row not in stored]
    assert not missing, "run scripts/regex-seed and commit src/nuseal/cli/regex_seed.py"
    assert len(made) > 10  # cryptography.x509.name and email.utils compile at import
    assert regexes.engine_key() == regex_seed.KEY


def test_seeding_puts_the_patterns_where_re_compile_finds_them() -> None:
    out = _fresh_process(
        "import re\nfrom nuseal.cli import regexes, regex_seed\n"
        "count = regexes.seed()\n"
        "cached = {(k[1], k[2]): v for k, v in re._cache.items() if k[0] is str}\n"
        "hits = sum(re.compile(p, f) is cached.get((p, f)) for p, f, *_ in regex_seed.ROWS)\n"
        "import cryptography.x509\n"
        "print(count, len(regex_seed.ROWS), hits)\n"
        "print(cryptography.x509.Name.from_rfc4514_string('CN=a\\\\,b+O=c,C=DE').rfc4514_string())\n")
    counts, name = out.splitlines()
    count, rows, hits = map(int, counts.split())
    assert count == rows == hits > 10
    assert name == "CN=a\\,b+O=c,C=DE"  # cryptography's RFC 4514 parser runs on the seeded patterns


def test_a_seed_made_by_another_engine_is_not_used() -> None:
    out = _fresh_process(
        "import re\nfrom nuseal.cli import regexes, regex_seed\n"
        "regex_seed.KEY = ((3, 11), 0, 4)\n"
        "before = len(re._cache)\n"
        "print(regexes.seed(), len(re._cache) - before)\n")
    assert out.split() == ["0", "0"]


def test_the_seed_changes_no_pattern_already_compiled() -> None:
    pattern, flags = regex_seed.ROWS[0][0], regex_seed.ROWS[0][1]
    compiled = re.compile(pattern, flags)
    regexes.seed()
    assert re.compile(pattern, flags) is compiled
