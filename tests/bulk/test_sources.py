"""Listing SOURCE, shards and chunks (unit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.bulk import sources
from gateway.bulk.sources import FolderSource, Item, ListSource, ReadFailed

pytestmark = pytest.mark.unit


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_folder_lists_images_recursively_by_extension_in_any_case(tmp_path: Path) -> None:
    for name in ("a/IMG1.JPG", "a/b/img2.jpeg", "c.png", "d.WebP", "e.bmp", "f.gif", "notes.txt", "g.tiff"):
        touch(tmp_path / name)
    keys = [item.key for item in FolderSource(tmp_path).list()]
    assert keys == ["a/IMG1.JPG", "a/b/img2.jpeg", "c.png", "d.WebP", "e.bmp"]


def test_hidden_files_and_folders_are_not_part_of_the_collection(tmp_path: Path) -> None:
    touch(tmp_path / "cam/.hidden.jpg")
    touch(tmp_path / ".thumbs/x.jpg")
    touch(tmp_path / "cam/shown.jpg")
    assert [item.key for item in FolderSource(tmp_path).list()] == ["cam/shown.jpg"]


def test_symlinked_files_are_followed_as_in_a_mounted_configmap(tmp_path: Path) -> None:
    data = tmp_path / "..2026_01_01" / "leopard.jpg"
    touch(data, b"jpeg")
    os.symlink(data, tmp_path / "leopard.jpg")
    (items,) = FolderSource(tmp_path).list()
    assert items.key == "leopard.jpg"
    assert FolderSource(tmp_path).read(items, 100)[0] == b"jpeg"


def test_the_fingerprint_changes_when_the_file_changes(tmp_path: Path) -> None:
    path = touch(tmp_path / "a.jpg", b"one")
    (before,) = FolderSource(tmp_path).list()
    path.write_bytes(b"other")
    os.utime(path, ns=(1, 2))
    (after,) = FolderSource(tmp_path).list()
    assert before.fingerprint != after.fingerprint


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(sources.SourceError):
        sources.open_source(str(tmp_path / "nowhere"))


def test_a_list_file_names_paths_relative_to_itself_and_urls(tmp_path: Path) -> None:
    touch(tmp_path / "cams/a.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("# survey 2024\n\ncams/a.jpg\nhttps://example.org/b.jpg\ncams/a.jpg\nmissing.jpg\n")
    items = {item.key: item for item in ListSource(listing).list()}
    assert sorted(items) == ["cams/a.jpg", "https://example.org/b.jpg", "missing.jpg"]
    assert items["cams/a.jpg"].locator == str(tmp_path / "cams/a.jpg")
    with pytest.raises(ReadFailed) as failed:
        ListSource(listing).read(items["missing.jpg"], 100)
    assert failed.value.code == "unreadable"


def test_a_file_larger_than_the_cap_is_a_read_failure_not_a_crash(tmp_path: Path) -> None:
    touch(tmp_path / "big.jpg", b"x" * 101)
    (item,) = FolderSource(tmp_path).list()
    with pytest.raises(ReadFailed) as failed:
        FolderSource(tmp_path).read(item, 100)
    assert failed.value.code == "too_large"


def items(count: int, size: int = 10) -> list[Item]:
    return [Item(f"img{index:03d}.jpg", "", "", size=size) for index in range(count)]


def test_chunks_hold_at_most_the_batch_size_and_the_byte_cap() -> None:
    by_count = list(sources.chunk(items(70), 32, 10**9))
    assert [len(c) for c in by_count] == [32, 32, 6]
    by_bytes = list(sources.chunk(items(10, size=40), 32, 100))
    assert [len(c) for c in by_bytes] == [2, 2, 2, 2, 2]


def test_an_image_larger_than_the_byte_cap_travels_alone() -> None:
    listing = [Item("a", "", "", size=10), Item("b", "", "", size=500), Item("c", "", "", size=10)]
    assert [[i.key for i in c] for c in sources.chunk(listing, 32, 100)] == [["a"], ["b"], ["c"]]


def test_shards_partition_the_collection_and_never_move_an_image_when_it_grows() -> None:
    small, large = items(200), items(300)
    shards = [sources.select_shard(small, index, 4) for index in range(4)]
    assert sorted(item.key for shard in shards for item in shard) == sorted(item.key for item in small)
    assert all(shards)  # every shard has work
    for index in range(4):
        grown = {item.key for item in sources.select_shard(large, index, 4)}
        assert {item.key for item in shards[index]} <= grown
