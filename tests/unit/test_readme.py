"""README.rst shows the trigger bodies the service takes and the OpenAPI document shows."""

from schemas.examples import TRIGGER_EXAMPLES
from schemas.triggers import validate_trigger
from tests.support import readme


def test_readme_shows_the_documented_trigger_of_each_kind():
    assert readme.trigger_examples() == [TRIGGER_EXAMPLES[kind] for kind in ("event", "order", "attendee")]


def test_each_readme_trigger_is_valid_as_it_stands():
    kinds = [validate_trigger(body)["entity_kind"] for body in readme.trigger_examples()]
    assert kinds == ["event", "order", "attendee"]


def test_the_walkthrough_sets_allowed_networks_before_its_first_command():
    text = readme.README.read_text(encoding="utf-8")
    walkthrough = text.index(".. walkthrough-start")
    assert text.index("DOO_WEBHOOKS_ALLOWED_NETWORKS=127.0.0.0/8 doo-webhooks standalone") < walkthrough
    assert "127.0.0.1:9000" in readme.walkthrough()
