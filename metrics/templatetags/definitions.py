"""`{% definition "key" %}`: a figure's one-line definition on hover and focus, linked to the metrics help page."""

from django import template

from metrics.definitions import DEFINITIONS

register = template.Library()


@register.inclusion_tag("metrics/_definition.html", takes_context=True)
def definition(context, key, suffix=""):
    return {"key": key, "id": f"def-{key}{suffix}", "definition": DEFINITIONS[key], "tenant": context["tenant"]}
