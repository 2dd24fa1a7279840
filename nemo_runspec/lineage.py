"""Lineage queries over the registry: the ancestors and descendants of a version.

Ancestors follow each record's pinned ``inputs``; descendants invert them over every record
the registry holds. Both come back as a tree of :class:`LineageNode` that renders as a rich
tree, a Mermaid flowchart or JSON.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nemo_runspec.errors import NemotronError
from nemo_runspec.refs import ArtifactRef, is_artifact_ref
from nemo_runspec.registry.record import ArtifactRecord

if TYPE_CHECKING:
    from rich.tree import Tree

    from nemo_runspec.artifacts.tracking import ArtifactTracking

Direction = Literal["ancestors", "descendants"]


@dataclass
class LineageNode:
    """One artifact version (``record``) or external input (``record`` None) and its links."""

    uri: str
    record: ArtifactRecord | None = None
    links: list[LineageNode] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        if self.record is None:
            return self.uri
        return f"{self.record.ref} ({self.record.type}{', data deleted' if self.record.deleted else ''})"

    def walk(self) -> list[LineageNode]:
        nodes, stack = [], [self]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(reversed(node.links))
        return nodes


def ancestors(tracking: ArtifactTracking, ref: str) -> LineageNode:
    """The tree of everything ``ref`` was made from, back to raw inputs."""
    root = tracking.resolve(ref, deleted_ok=True)
    return _expand(root.uri, root, lambda record: record.inputs, tracking)


def descendants(tracking: ArtifactTracking, ref: str) -> LineageNode:
    """The tree of everything made from ``ref``, directly or through other artifacts."""
    root = tracking.resolve(ref, deleted_ok=True)
    consumers: dict[str, list[str]] = defaultdict(list)
    for record in tracking.registry.records():
        for uri in record.inputs:
            consumers[uri].append(record.uri)
    return _expand(root.uri, root, lambda record: consumers.get(record.uri, []), tracking)


def _expand(uri, record, links_of, tracking, seen=None) -> LineageNode:
    seen = set() if seen is None else seen
    node = LineageNode(uri=uri, record=record)
    if record is None or record.uri in seen:
        return node  # external input, or a version already shown on this path
    seen = seen | {record.uri}
    for link in links_of(record):
        linked = None
        if is_artifact_ref(link):
            try:
                linked = tracking.registry.resolve(ArtifactRef.parse(link))
            except NemotronError as err:
                node.links.append(LineageNode(uri=link, error=str(err)))
                continue
        node.links.append(_expand(link, linked, links_of, tracking, seen))
    return node


def to_rich_tree(node: LineageNode, direction: Direction = "ancestors") -> Tree:
    from rich.markup import escape
    from rich.tree import Tree

    def label(n: LineageNode) -> str:
        if n.error:
            return f"[red]{escape(n.uri)}: {escape(n.error)}[/red]"
        if n.record is None:
            return f"[dim]{escape(n.uri)}[/dim]"
        deleted = " [red](data deleted by gc)[/red]" if n.record.deleted else ""
        return (f"[bold]{escape(n.record.ref)}[/bold] [cyan]{n.record.type}[/cyan] "
                f"[dim]{escape(n.record.path)}[/dim]{deleted}")

    def grow(tree: Tree, n: LineageNode) -> None:
        for link in n.links:
            grow(tree.add(label(link)), link)

    title = "made from" if direction == "ancestors" else "used by"
    tree = Tree(f"{label(node)} [italic]({title})[/italic]")
    grow(tree, node)
    return tree


def to_mermaid(node: LineageNode, direction: Direction = "ancestors",
               group: Callable[[LineageNode, LineageNode | None], str | None] | None = None) -> str:
    """A Mermaid flowchart; arrows always point from input to output.

    ``group(node, consumer)`` may name a subgraph for each node (``consumer`` is the node it
    was reached from); nodes of the same name are drawn inside one box, in first-seen order.
    """
    ids: dict[str, str] = {}
    declarations: dict[str | None, list[str]] = {}
    consumers: dict[str, LineageNode] = {}
    if direction == "ancestors":  # an input shared by several artifacts sits with the first one reached
        for n in node.walk():
            for link in n.links:
                consumers.setdefault(link.uri, n)
    for n in node.walk():
        if n.uri in ids:
            continue
        ids[n.uri] = f"n{len(ids)}"
        text = n.label.replace('"', "'") if not n.record else f"{n.record.ref}<br/>{n.record.type}"
        if n.record and n.record.deleted:
            text += "<br/>(data deleted)"
        box = group(n, consumers.get(n.uri)) if group else None
        declarations.setdefault(box, []).append(f'{ids[n.uri]}["{text}"]')
    lines = ["flowchart TB"]
    boxes = [b for b in declarations if b is not None]
    for number, box in enumerate(sorted(boxes)):
        lines.append(f'    subgraph stage{number}["{box}"]')
        lines += [f"        {d}" for d in declarations[box]]
        lines.append("    end")
    lines += [f"    {d}" for d in declarations.get(None, [])]
    edges = []
    for n in node.walk():
        for link in n.links:
            src, dst = (link, n) if direction == "ancestors" else (n, link)
            edge = f"    {ids[src.uri]} --> {ids[dst.uri]}"
            if edge not in edges:
                edges.append(edge)
    return "\n".join(lines + edges)


def to_json(node: LineageNode, direction: Direction = "ancestors") -> dict[str, Any]:
    key = "inputs" if direction == "ancestors" else "consumers"
    data: dict[str, Any] = {"uri": node.uri}
    if node.record is not None:
        data |= {"name": node.record.name, "version": node.record.version, "type": node.record.type, "path": node.record.path,
                 "deleted": node.record.deleted is not None}
    if node.error:
        data["error"] = node.error
    data[key] = [to_json(link, direction) for link in node.links]
    return data
