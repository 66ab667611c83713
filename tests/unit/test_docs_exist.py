"""Every document the code and the docs name is in the repository: a reader who cloned the
project can open every page a comment, docstring, README or report sends them to."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", ".local", "artifacts", "node_modules", "__pycache__"}
SUFFIXES = {".py", ".js", ".md", ".yaml", ".yml", ".html", ".toml", ".txt", ".cfg", ".ini"}
# A file name ending in .md, possibly with a folder, e.g. docs/EVENTS.md or README.md
NAMED = re.compile(r"(?<![\w/.-])((?:\.\./|\./)?(?:[\w-]+/)*[\w-]+\.md)\b")
# Names that are not documents of this project (other projects' files named in prose).
NOT_OURS = {"CHANGELOG.md"}


def _sources():
    for path in REPO.rglob("*"):
        if (
            path.is_file()
            and path.suffix in SUFFIXES
            and not (SKIP_DIRS & set(path.relative_to(REPO).parts))
        ):
            yield path


def _exists(name, source):
    if name.startswith(("./", "../")):
        return (source.parent / name).resolve().is_file()
    candidates = [REPO / name, source.parent / name, REPO / "docs" / name, REPO / "bench" / name]
    return any(candidate.is_file() for candidate in candidates)


def test_every_named_document_exists_in_the_repository():
    missing = []
    for source in _sources():
        if source.name == "RESULTS.md":  # the bench's log quotes history verbatim
            continue
        for number, line in enumerate(
            source.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            for name in NAMED.findall(line):
                if name not in NOT_OURS and not _exists(name, source):
                    missing.append(f"{source.relative_to(REPO)}:{number}: {name}")
    assert not missing, "documents named but not in the repository:\n" + "\n".join(missing)


def test_nothing_sends_the_reader_outside_the_repository():
    outside = []
    for source in _sources():
        text = source.read_text(encoding="utf-8", errors="replace")
        for marker in (
            "../shared/",
            "contract/EVENTS",
            "contract/API",
            "contract/PROTOCOLS",
            "contract/HL7",
        ):
            if marker in text and source.name != pathlib.Path(__file__).name:
                outside.append(f"{source.relative_to(REPO)}: {marker}")
    assert not outside, outside
