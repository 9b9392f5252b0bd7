"""The label -> taxon mapping covers exactly the model's labels (unit)."""

from __future__ import annotations

import pytest

from gateway import contract
from gateway.bulk import taxa

pytestmark = pytest.mark.unit

CAMTRAP_RANKS = {"kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies"}


def test_every_label_has_a_taxon_or_is_blank_and_nothing_else_is_mapped() -> None:
    assert tuple(taxa.TAXA) == contract.LABELS
    assert [label for label, taxon in taxa.TAXA.items() if taxon is None] == ["blank"]


def test_every_rank_is_one_camtrap_dp_allows_and_names_are_unique() -> None:
    mapped = [taxon for taxon in taxa.TAXA.values() if taxon is not None]
    assert {taxon.rank for taxon in mapped} <= CAMTRAP_RANKS
    assert len({taxon.scientific_name for taxon in mapped}) == len(mapped)


def test_the_leopard_is_a_species_with_its_whole_lineage() -> None:
    leopard = taxa.taxon("leopard")
    assert leopard is not None
    assert leopard.lineage() == [
        "animalia",
        "chordata",
        "mammalia",
        "carnivora",
        "felidae",
        "panthera",
        "pantherapardus",
    ]
    assert leopard.taxonomic_entry()["scientificName"] == "Panthera pardus"
