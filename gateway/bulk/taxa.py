"""Our labels as taxa: the documented mapping behind `scientificName` (Camtrap DP) and the MegaDetector
category descriptions.

The eight classes are those of the DrivenData "Conser-vision" camera-trap challenge (Taï National Park,
Côte d'Ivoire). Most are wider than a species, so each maps to the narrowest taxon that holds everything the
class holds, at the rank that taxon has:

| label | scientificName | rank | why |
|---|---|---|---|
| antelope_duiker | Bovidae | family | duikers (Cephalophinae) and the other antelopes are all bovids |
| bird | Aves | class | any bird |
| blank | (none) | | no animal: `observationType` blank |
| civet_genet | Viverridae | family | civets, genets (the African palm civet, Nandiniidae, too) |
| hog | Suidae | family | red river hog, giant forest hog |
| leopard | Panthera pardus | species | one species |
| monkey_prosimian | Primates | order | monkeys and prosimians (galagos, pottos) |
| rodent | Rodentia | order | any rodent |

A model trained on other classes needs its own table here; `tests/bulk/test_taxa.py` fails when the labels
and this table disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway import contract


@dataclass(frozen=True)
class Taxon:
    scientific_name: str
    rank: str
    vernacular_name: str
    # Higher ranks, kingdom first, down to (and including) the taxon itself where it is one of them.
    kingdom: str = "Animalia"
    phylum: str = "Chordata"
    class_: str | None = None
    order: str | None = None
    family: str | None = None
    genus: str | None = None

    def lineage(self) -> list[str]:
        """Kingdom to the taxon itself, lower case, as MegaDetector's category descriptions write them."""
        parts = [self.kingdom, self.phylum, self.class_, self.order, self.family, self.genus]
        names = [part.lower() for part in parts if part]
        if self.rank == "species":
            names.append(self.scientific_name.lower().replace(" ", ""))
        return names

    def taxonomic_entry(self) -> dict[str, object]:
        """The `taxonomic` entry of a Camtrap DP datapackage.json."""
        entry: dict[str, object] = {
            "scientificName": self.scientific_name,
            "taxonRank": self.rank,
            "kingdom": self.kingdom,
            "phylum": self.phylum,
        }
        for key, value in (("class", self.class_), ("order", self.order), ("family", self.family)):
            if value:
                entry[key] = value
        if self.genus:
            entry["genus"] = self.genus
        entry["vernacularNames"] = {"eng": self.vernacular_name}
        return entry


BLANK: Final = "blank"

TAXA: Final[dict[str, Taxon | None]] = {
    "antelope_duiker": Taxon(
        "Bovidae",
        "family",
        "antelopes and duikers",
        class_="Mammalia",
        order="Artiodactyla",
        family="Bovidae",
    ),
    "bird": Taxon("Aves", "class", "birds", class_="Aves"),
    BLANK: None,
    "civet_genet": Taxon(
        "Viverridae", "family", "civets and genets", class_="Mammalia", order="Carnivora", family="Viverridae"
    ),
    "hog": Taxon("Suidae", "family", "hogs", class_="Mammalia", order="Artiodactyla", family="Suidae"),
    "leopard": Taxon(
        "Panthera pardus",
        "species",
        "leopard",
        class_="Mammalia",
        order="Carnivora",
        family="Felidae",
        genus="Panthera",
    ),
    "monkey_prosimian": Taxon(
        "Primates", "order", "monkeys and prosimians", class_="Mammalia", order="Primates"
    ),
    "rodent": Taxon("Rodentia", "order", "rodents", class_="Mammalia", order="Rodentia"),
}


def taxon(label: str) -> Taxon | None:
    return TAXA[label]


def animal_labels() -> tuple[str, ...]:
    return tuple(label for label in contract.LABELS if TAXA[label] is not None)
