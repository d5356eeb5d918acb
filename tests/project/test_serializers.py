"""pov.serializers.Serializer: fields from a per-class template behave as DRF's deep-copied ones."""

from types import SimpleNamespace

from rest_framework import serializers

from pov.serializers import Serializer


class Greeting(serializers.Field):
    """Reads the root serializer's context, as fields that need the request do."""

    def get_attribute(self, instance):
        return instance

    def to_representation(self, value):
        return f"{self.context['greeting']}, {value.name}"


class Inner(Serializer):
    name = serializers.CharField(max_length=5)
    greeting = Greeting(read_only=True)


class Outer(Serializer):
    title = serializers.CharField(source="heading")
    inner = Inner()
    items = Inner(many=True)


def _outer(**context):
    instance = SimpleNamespace(heading="H", inner=SimpleNamespace(name="Ada"), items=[SimpleNamespace(name="Bo")])
    return Outer(instance, context=context)


def test_each_instance_has_its_own_bound_fields():
    first, second = _outer(greeting="Hi"), _outer(greeting="Hello")
    for name in ("title", "inner", "items"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
    assert first.fields["inner"].fields["name"] is not second.fields["inner"].fields["name"]
    assert first.fields["items"].child is not second.fields["items"].child


def test_nested_fields_read_their_own_root_context():
    assert _outer(greeting="Hi").data == {
        "title": "H", "inner": {"name": "Ada", "greeting": "Hi, Ada"}, "items": [{"name": "Bo", "greeting": "Hi, Bo"}],
    }  # fmt: skip
    assert _outer(greeting="Hello").data["items"] == [{"name": "Bo", "greeting": "Hello, Bo"}]


def test_validation_uses_the_declared_rules_on_every_instance():
    for _ in range(2):
        too_long = Inner(data={"name": "Adelaide"})
        assert not too_long.is_valid()
        assert too_long.errors == {"name": ["Ensure this field has no more than 5 characters."]}
        assert Inner(data={"name": "Ada"}).is_valid()
