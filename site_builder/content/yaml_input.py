"""YAML from chapters (front matter, chart and table blocks), parsed within bounds.

A chapter may come from someone else, so its YAML is limited to what a chapter needs: text, numbers,
true/false, null, lists and mappings with text keys, at most MAX_BYTES long and MAX_DEPTH deep.
Refused, with the line: anchors and aliases (`&a` / `*a`: a one-line "billion laughs" expands to a value
too big to print or hash), duplicate keys (YAML would keep the last silently), keys that are not text,
and tags that make other types (`!!binary`, `!!set`, `!!omap`, `!!pairs`). Dates stay text as written.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.composer import ComposerError

MAX_BYTES = 64_000
MAX_DEPTH = 32


class BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader without aliases, duplicate or non-text keys, deep nesting or exotic types."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ComposerError(None, None, "aliases (*name) are not allowed; write the value out", mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise ComposerError(None, None, f"anchors (&{event.anchor[:40]}) are not allowed; write the value out", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag != "tag:yaml.org,2002:str":
                raise ConstructorError(None, None, f"key {key_node.value[:40]!r} must be text (quote it)", key_node.start_mark)
            if key_node.value in seen:
                raise ConstructorError(None, None, f"key '{key_node.value[:40]}' appears twice", key_node.start_mark)
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _refuse(loader: BoundedLoader, node) -> None:
    raise ConstructorError(None, None, f"{node.tag.replace('tag:yaml.org,2002:', '!!')[:60]} values are not allowed here", node.start_mark)


for _tag in ("binary", "set", "omap", "pairs"):
    BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)
BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)  # a date stays text
BoundedLoader.add_constructor(None, _refuse)  # any other tag (!python/object, !custom)


def load_bounded(text: str) -> Any:
    """yaml.safe_load within the bounds above; raises yaml.YAMLError (with a mark where there is one)."""
    if len(text) > MAX_BYTES:
        raise yaml.YAMLError(f"longer than {MAX_BYTES:,} characters")
    return yaml.load(text, Loader=BoundedLoader)
