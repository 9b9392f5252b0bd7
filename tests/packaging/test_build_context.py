"""Level 1: every file an image copies is in its build context, under BuildKit and under the legacy builder.

The images build from the repository root. BuildKit reads the Dockerfile's own <Dockerfile>.dockerignore;
the legacy builder (DOCKER_BUILDKIT=0, what the scripts use where the docker CLI has no buildx) reads only the
root .dockerignore. A file one of them leaves out fails that build with "not found", so both must admit
everything the COPY lines name, and neither may send what no image needs (virtualenvs, .git, bin/).
"""

from __future__ import annotations

import pytest

from tests.support.dockerfiles import REPO, BuildContext, copied_files, copy_sources

DOCKERFILES = ["gateway/Dockerfile", "serving/Dockerfile", "serving/standin/Dockerfile"]
ROOT_CONTEXT = BuildContext.read(REPO / ".dockerignore")
NEVER_SENT = [
    ".venv/pyvenv.cfg",
    ".venv-gateway/bin/python",
    ".git/HEAD",
    "bin/helm",
    "build/golden/leopard.jpg",
]


def own_context(dockerfile: str) -> BuildContext:
    return BuildContext.read(REPO / f"{dockerfile}.dockerignore")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_buildkit_admits_every_file_the_dockerfile_copies(dockerfile: str) -> None:
    if not (REPO / "build" / "models").is_dir() and "serving" in dockerfile:
        pytest.skip("the exported model is not built yet (make model)")
    context = own_context(dockerfile)
    left_out = [path for path in copied_files(REPO / dockerfile) if not context.admits(path)]
    assert left_out == []


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_legacy_builder_admits_every_file_the_dockerfile_copies(dockerfile: str) -> None:
    if not (REPO / "build" / "models").is_dir() and "serving" in dockerfile:
        pytest.skip("the exported model is not built yet (make model)")
    left_out = [path for path in copied_files(REPO / dockerfile) if not ROOT_CONTEXT.admits(path)]
    assert left_out == []


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_no_context_sends_virtualenvs_git_or_tools(dockerfile: str) -> None:
    for context in (own_context(dockerfile), ROOT_CONTEXT):
        assert [path for path in NEVER_SENT if context.admits(path)] == []


def test_a_copy_from_a_stage_is_not_read_from_the_context() -> None:
    assert "/opt/venv" not in copy_sources(REPO / "gateway" / "Dockerfile")


@pytest.mark.parametrize(
    ("patterns", "path", "admitted"),
    [
        ("*\n!gateway/\n", "gateway/bulk/job.py", True),  # an admitted folder admits what is inside
        ("*\n!gateway/*.py\n", "gateway/app.py", True),
        ("*\n!gateway/*.py\n", "gateway/bulk/job.py", False),  # `*` stays within one segment
        ("*\n!gateway/**/*.py\n", "gateway/bulk/job.py", True),
        ("*\n!gateway/**/*.py\n", "gateway/app.py", True),  # `**/` may match no folder
        ("*\n!gateway/\n**/__pycache__\n", "gateway/__pycache__/app.pyc", False),  # the last match wins
        ("!gateway/\n*\n", "gateway/app.py", False),
        ("build\n", "build/models/m.pb", False),  # a matching parent folder excludes
        ("/build/\n", "build/x", False),  # cleaned: leading / and trailing / do not matter
        ("build/*.jpg\n", "build/models/m.pb", True),
    ],
)
def test_the_filter_follows_dockers_rules(patterns: str, path: str, admitted: bool) -> None:
    assert BuildContext.parse(patterns).admits(path) is admitted
