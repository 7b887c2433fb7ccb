"""The official R4 examples copied into tests/data and their committed outcomes agree: every
copied example has exactly one expected outcome, and every refusal names a reason the
adapter's README lists."""

from __future__ import annotations

import json

from tests.support.fhir_examples import EXAMPLES_DIR, copied_examples, expectations
from tests.support.samples import SAMPLES, TESTS_DIR

README = {
    "scheduling": TESTS_DIR.parent / "services" / "scheduling_adapter" / "README.md",
    "billing": TESTS_DIR.parent / "services" / "billing_adapter" / "README.md",
}


def test_every_copied_example_has_one_expected_outcome() -> None:
    assert sorted(e.path for e in expectations()) == copied_examples()
    assert len(copied_examples()) == 10


def test_the_copies_are_the_package_s_r4_examples() -> None:
    package = json.loads((SAMPLES / EXAMPLES_DIR / "package.json").read_bytes())
    assert (package["name"], package["version"]) == ("hl7.fhir.r4.examples", "4.0.1")
    assert package["license"] == "CC0-1.0"
    for example in expectations():
        resource = json.loads(example.file.read_bytes())
        assert resource["resourceType"] == example.resource_type


def test_every_refusal_of_a_valid_example_is_in_the_adapter_s_refusal_list() -> None:
    for example in expectations():
        if not example.accepted:
            assert f"`{example.reason}`" in README[example.adapter].read_text(), example
