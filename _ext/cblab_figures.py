"""The book's own Sphinx extension: figure numbers per chapter.

Sphinx numbers figures across the whole book unless the table of contents is numbered, and the
chapters carry their numbers in their titles ("5. KV layout") instead. This renumbers each
chapter's figures after Sphinx has assigned them: the third figure of ``book/05_kv_layout`` is
"Fig. 5.3", in its caption and in every ``{numref}`` to it, from any page.

A long chapter continues on section pages, listed under it in ``_toc.yml`` (``sections:``) and
named with its two-digit number (``book/05_2_memory_pressure``). The numbering runs on across
them in the order of the table of contents: if ``book/05_kv_layout`` draws nine figures, the
first figure of ``book/05_2_memory_pressure`` is "Fig. 5.10". Pages whose names do not start
with a two-digit chapter number keep Sphinx's numbers.
"""

from __future__ import annotations

import re

CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]*$")


def reading_order(env) -> list[str]:
    """Every page in the order of the table of contents: a page, then the pages its toctree
    lists (a chapter's toctree, with its section pages, comes after the chapter's own text)."""
    order, seen = [], set()

    def walk(docname: str) -> None:
        if docname in seen:
            return
        seen.add(docname)
        order.append(docname)
        for child in env.toctree_includes.get(docname, ()):
            walk(child)

    walk(env.config.root_doc)
    return order + sorted(d for d in env.toc_fignumbers if d not in seen)   # pages off the toc


def number_per_chapter(app, env) -> list[str]:
    counts: dict[tuple[int, str], int] = {}         # (chapter, figure type) -> figures so far
    for docname in reading_order(env):
        match = CHAPTER.search(docname)
        if not match or docname not in env.toc_fignumbers:
            continue
        chapter = int(match.group(1))
        for figtype, numbers in env.toc_fignumbers[docname].items():
            # Sphinx numbers a page's figures in reading order, so sorting keeps that order.
            for figure_id in sorted(numbers, key=numbers.get):
                counts[chapter, figtype] = counts.get((chapter, figtype), 0) + 1
                numbers[figure_id] = (chapter, counts[chapter, figtype])
    return []


def setup(app):
    # After Sphinx's own handler of the event (priority 500), which assigns the numbers.
    app.connect("env-get-updated", number_per_chapter, priority=900)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
