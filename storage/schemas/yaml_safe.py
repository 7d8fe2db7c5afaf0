"""Safe YAML without aliases, for every file a person uploads or an admin replaces (the FAQ knowledge
base and contacts, the CSDL layouts): no Python objects (a SafeLoader) and no alias, so a small file
cannot expand into a huge structure ("billion laughs"). An anchor alone is harmless and passes."""

from __future__ import annotations

from typing import Any

import yaml


class NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses an alias (`*name`) where it meets one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def load_no_aliases(text: str) -> Any:
    """The document in `text`; raises `yaml.YAMLError` on bad YAML or an alias (each caller says it in
    its own words)."""
    return yaml.load(text, Loader=NoAliasLoader)  # a SafeLoader subclass
