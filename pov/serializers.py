"""A DRF serializer that builds its fields from a per-class template.

DRF deep-copies every declared field for every serializer instance, which re-creates each field from
its arguments: for a response carrying an engagement that is most of the cost of serializing it. The
template is built that way once per class and never bound; each instance takes a shallow copy of each
plain field (an unbound field holds nothing a request changes) and a deep copy of nested serializers,
which carry their own bound children.
"""

import copy

from rest_framework import serializers


class Serializer(serializers.Serializer):
    _field_templates = {}

    def get_fields(self):
        template = self._field_templates.get(type(self))
        if template is None:
            template = self._field_templates[type(self)] = super().get_fields()
        return {
            name: copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) else copy.copy(field)
            for name, field in template.items()
        }
