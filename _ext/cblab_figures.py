"""The book's own Sphinx extension: figure numbers per chapter.

Sphinx numbers figures across the whole book unless the table of contents is numbered, and the
chapters carry their numbers in their titles ("5. KV layout") instead. This renumbers each
chapter's figures after Sphinx has assigned them: the third figure of ``book/05_kv_layout`` is
"Fig. 5.3", in its caption and in every ``{numref}`` to it. Pages whose names do not start with
a two-digit chapter number keep Sphinx's numbers.
"""

from __future__ import annotations

import re

CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]*$")


def number_per_chapter(app, env) -> list[str]:
    for docname, by_type in env.toc_fignumbers.items():
        match = CHAPTER.search(docname)
        if not match:
            continue
        chapter = int(match.group(1))
        for numbers in by_type.values():
            # Sphinx numbers a page's figures in reading order, so sorting keeps that order.
            for index, figure_id in enumerate(sorted(numbers, key=numbers.get), start=1):
                numbers[figure_id] = (chapter, index)
    return []


def setup(app):
    # After Sphinx's own handler of the event (priority 500), which assigns the numbers.
    app.connect("env-get-updated", number_per_chapter, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
